"""Suite-wide: scapy (used in tests to craft packets) must never resolve a destination MAC.

Building `Ether()/IP(dst=...)` without a `dst` MAC makes scapy ask the neighbour resolver, which
looks the address up with ARP on this machine's real interface. Test frames are only bytes for the
DPI core: they get the broadcast address instead, and no packet leaves the machine.
"""

from __future__ import annotations

import logging


def _no_mac_resolution() -> None:
    try:
        from scapy.config import conf
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6
    except ImportError:  # scapy is a test dependency; without it there is nothing to disable
        return
    for key in [k for k in conf.neighbor.resolvers if k[1] in (IP, IPv6)]:
        del conf.neighbor.resolvers[key]
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)


_no_mac_resolution()
