"""The node kinds and port conventions every tspulab topology shares.

- A `LinuxRouter` forwards IPv4 between its interfaces (Mininet's examples/linuxrouter.py).
- A `PrefixOwner` answers on every address of whole prefixes with `ip route add local PREFIX dev
  lo`, so one namespace is a cloud that owns, say, a /15, and blocking the prefix breaks every
  service in it.
- A TSPU switch is a bump in the wire with fixed port numbers, so the controller knows the sides:
  port 1 faces the subscribers, port 2 the upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tspulab.lab.netlink import (
    NetlinkNode,
    add_address,
    add_local_route,
    add_route,
    set_sysctl,
)

#: TSPU switch port numbers (fixed in addLink so the controller knows the sides).
TSPU_SUBSCRIBER_PORT = 1
TSPU_UPSTREAM_PORT = 2


class LinuxRouter(NetlinkNode):
    """A namespace that forwards IPv4 (Mininet's examples/linuxrouter.py)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        set_sysctl(self, "net.ipv4.ip_forward", "1")
        for dst, via in params.get("static_routes", ()):
            add_route(self, dst, via=via)
        return result


class PrefixOwner(NetlinkNode):
    """A host that answers on every address of its prefixes (AnyIP via local routes)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        for prefix in params.get("owned_prefixes", ()):
            add_local_route(self, prefix)
        for addr in params.get("lo_addresses", ()):
            add_address(self, addr, "lo")
        for dst, via in params.get("static_routes", ()):
            add_route(self, dst, via=via)
        return result


@dataclass(frozen=True)
class CloudSpec:
    """A cloud as the topology needs it: a host name and the prefixes it owns."""

    host: str
    prefixes: tuple[str, ...]
    label: str = ""
