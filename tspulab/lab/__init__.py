"""Bring-up and teardown of a real network: private OVS, os-ken, and a record of all it made."""
