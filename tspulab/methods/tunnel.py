"""The network side of VPN methods: the server forwards and masquerades, the client routes.

A VPN server in a cloud host receives the subscriber's packets on its TUN interface and sends
them on to the target from its own address, as a commercial VPN server does: IP forwarding on
and a masquerade rule (nftables, in the host's own namespace, so nothing of it reaches the
machine's tables). The client routes the method's prefixes into its TUN interface in a table of
its own, used only by traffic bound to that interface, so one subscriber can probe direct and
through several VPNs at the same time and the tunnel's own packets never loop into it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from tspulab.methods.process import Node, run_checked


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


def add_routes(
    node: Node,
    routes: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
    dev: str,
    table: int,
    tool: str,
    src: str | None = None,
) -> str:
    """The prefixes through `dev`, in a routing table of the method's own that only traffic bound
    to `dev` uses (`ip rule oif`): a probe through the method binds to the interface (curl
    `--interface`), while the subscriber's other traffic, direct probes and the tunnel's own
    packets keep the main table. `src`: the source address the routes give (IPsec's virtual IP,
    which is not the interface's own). Returns the command that removes the rule (the table's
    routes go with the interface)."""
    via = f"dev {dev}" + (f" src {src}" if src else "")
    for net in routes:
        if net.version == 4:
            run_checked(node, f"ip route replace {net} {via} table {table}", tool=tool)
    run_checked(node, f"ip rule add oif {dev} table {table} priority {table}", tool=tool)
    return f"ip rule del oif {dev} table {table} priority {table}"
