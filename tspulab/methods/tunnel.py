"""The network side of VPN methods: the server forwards and masquerades, the client routes.

A VPN server in a cloud host receives the subscriber's packets on its TUN interface and sends
them on to the target from its own address, as a commercial VPN server does: IP forwarding on
and a masquerade rule (nftables, in the host's own namespace, so nothing of it reaches the
machine's tables). The client sends the scenario's prefixes into its TUN interface, after pinning
a host route to the server through the path it had, so the tunnel's own packets do not loop.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path

from tspulab.methods.process import MethodError, Node, run_checked


def enable_forwarding_nat(
    node: Node, tunnel_net: ipaddress.IPv4Network, table: str, rules_file: Path, tool: str
) -> None:
    """Forward and masquerade traffic from `tunnel_net` leaving `node` (an nft table of its own,
    written to `rules_file` for the record)."""
    run_checked(node, "sysctl -q -w net.ipv4.ip_forward=1", tool=tool)
    rules = (
        f"table ip {table} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    ip saddr {tunnel_net} oifname != "tun*" masquerade\n'
        "  }\n"
        "}\n"
    )
    rules_file.write_text(rules)
    run_checked(node, f"nft -f {rules_file}", tool=tool)


def disable_nat(node: Node, table: str) -> None:
    node.cmd(f"nft delete table ip {table} 2>/dev/null")


def route_to(node: Node, address: str) -> tuple[str | None, str]:
    """(gateway or None, device) of `node`'s current route to `address`."""
    out = node.cmd(f"ip -4 route get {address}")
    dev = re.search(r"\bdev (\S+)", out)
    if dev is None:
        raise MethodError(f"{node.name} has no route to {address}: {out.strip()}")
    via = re.search(r"\bvia (\S+)", out)
    return (via.group(1) if via else None), dev.group(1)


def pin_server_route(node: Node, server: str, tool: str) -> str:
    """A /32 to the server through the current path; returns the command that removes it."""
    via, dev = route_to(node, server)
    spec = f"{server}/32" + (f" via {via}" if via else "") + f" dev {dev}"
    run_checked(node, f"ip route replace {spec}", tool=tool)
    return f"ip route del {spec}"


def add_routes(
    node: Node, routes: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network], dev: str, tool: str
) -> None:
    for net in routes:
        if net.version == 4:
            run_checked(node, f"ip route replace {net} dev {dev}", tool=tool)
