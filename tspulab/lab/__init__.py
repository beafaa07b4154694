"""Bring-up and teardown of a real network: private Open vSwitch, os-ken controller, a record of everything made."""
