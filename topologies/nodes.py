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

from mininet.node import Node

#: TSPU switch port numbers (fixed in addLink so the controller knows the sides).
TSPU_SUBSCRIBER_PORT = 1
TSPU_UPSTREAM_PORT = 2


class LinuxRouter(Node):  # type: ignore[misc]
    """A namespace that forwards IPv4 (Mininet's examples/linuxrouter.py)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1")
        for dst, via in params.get("static_routes", ()):
            self.cmd(f"ip route add {dst} via {via}")
        return result

    def terminate(self) -> None:
        self.cmd("sysctl -qw net.ipv4.ip_forward=0")
        super().terminate()


class PrefixOwner(Node):  # type: ignore[misc]
    """A host that answers on every address of its prefixes (AnyIP via local routes)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        for prefix in params.get("owned_prefixes", ()):
            self.cmd(f"ip route add local {prefix} dev lo")
        for addr in params.get("lo_addresses", ()):
            self.cmd(f"ip addr add {addr} dev lo")
        for dst, via in params.get("static_routes", ()):
            self.cmd(f"ip route add {dst} via {via}")
        return result


@dataclass(frozen=True)
class CloudSpec:
    """A cloud as the topology needs it: a host name and the prefixes it owns."""

    host: str
    prefixes: tuple[str, ...]
    label: str = ""
