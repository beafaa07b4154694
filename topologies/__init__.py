"""Mininet topologies. Installed as tspulab.topologies; also usable with `mn --custom`."""
