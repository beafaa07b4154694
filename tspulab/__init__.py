"""tspulab: a network emulation testbed for TSPU-style DPI censorship."""
