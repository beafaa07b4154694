"""The TUN methods' routing (tspulab.methods.tunnel.add_routes), shared by WireGuard, OpenVPN,
iodine, custom tools and IPsec (which gives its virtual IP as the routes' source)."""

from __future__ import annotations

import ipaddress

import pytest

from tspulab.methods.process import MethodError
from tspulab.methods.tunnel import add_routes

ROUTES = [ipaddress.ip_network("0.0.0.0/1"), ipaddress.ip_network("128.0.0.0/1"),
          ipaddress.ip_network("2000::/3")]  # fmt: skip


class _Node:
    name = "sub1"

    def __init__(self, fail: str | None = None) -> None:
        self.commands: list[str] = []
        self.fail = fail

    def cmd(self, line: str) -> str:
        command = line.removesuffix(" 2>&1; echo __rc=$?")
        self.commands.append(command)
        return "RTNETLINK answers: File exists\n__rc=2" if command == self.fail else "__rc=0"


def test_routes_in_the_methods_table_used_only_through_its_interface() -> None:
    node = _Node()
    undo = add_routes(node, ROUTES, "wg0c", 1234, "wireguard-go")  # type: ignore[arg-type]
    assert node.commands == [
        "ip route replace 0.0.0.0/1 dev wg0c table 1234",
        "ip route replace 128.0.0.0/1 dev wg0c table 1234",
        "ip rule add oif wg0c table 1234 priority 1234",
    ]  # IPv6 prefixes are left out: the lab's networks are IPv4
    assert undo == "ip rule del oif wg0c table 1234 priority 1234"


def test_ipsec_routes_carry_its_virtual_ip_as_source() -> None:
    node = _Node()
    undo = add_routes(node, ROUTES[:1], "ipsec0", 77, "strongswan client", src="10.99.0.1")  # type: ignore[arg-type]
    assert node.commands == [
        "ip route replace 0.0.0.0/1 dev ipsec0 src 10.99.0.1 table 77",
        "ip rule add oif ipsec0 table 77 priority 77",
    ]
    assert undo == "ip rule del oif ipsec0 table 77 priority 77"


def test_a_refused_route_names_the_tool_and_the_command() -> None:
    node = _Node(fail="ip rule add oif wg0c table 5 priority 5")
    with pytest.raises(MethodError, match=r"wireguard-go on sub1: `ip rule add oif wg0c"):
        add_routes(node, ROUTES[:1], "wg0c", 5, "wireguard-go")  # type: ignore[arg-type]
