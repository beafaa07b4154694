"""The lab's in-process netlink work (tspulab.lab.netlink) against what `ip`, `ethtool` and `ss`
report for the same namespaces: a veth pair across two namespaces, addresses, routes, offloads
and listening sockets, with no process started for any of it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tspulab.lab.netlink import (
    SOCKETS,
    NetlinkIntf,
    NetlinkLink,
    add_local_route,
    add_route,
    listening,
    offloads_off,
    set_sysctl,
)


@dataclass
class FakeNode:
    """What the netlink helpers read of a Mininet node: a PID in the node's namespace."""

    name: str
    pid: int
    nameToIntf: dict[str, Any]

    def delIntf(self, intf: Any) -> None:
        self.nameToIntf.pop(intf.name, None)


def _in(node: FakeNode, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", "-t", str(node.pid), "-n", *argv], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def two_namespaces() -> Iterator[tuple[FakeNode, FakeNode]]:
    procs = [subprocess.Popen(["unshare", "--net", "sleep", "60"]) for _ in range(2)]
    time.sleep(0.2)
    try:
        yield FakeNode("n1", procs[0].pid, {}), FakeNode("n2", procs[1].pid, {})
    finally:
        SOCKETS.close()
        for proc in procs:
            proc.kill()
            proc.wait()


def _veth_and_config(nodes: tuple[FakeNode, FakeNode]) -> dict[str, str]:
    n1, n2 = nodes
    NetlinkLink.makeIntfPair("n1-eth0", "n2-eth0", "02:00:00:00:00:01", None, n1, n2)
    intf = NetlinkIntf.__new__(NetlinkIntf)  # Mininet's constructor also registers with a node
    intf.node, intf.name, intf.link = n1, "n1-eth0", None
    intf.setIP("10.77.0.1/24")
    peer = NetlinkIntf.__new__(NetlinkIntf)
    peer.node, peer.name, peer.link = n2, "n2-eth0", None
    peer.setIP("10.77.0.2", 24)
    peer.isUp(setUp=True)
    add_route(n1, "198.51.100.0/24", via="10.77.0.2")
    add_local_route(n2, "198.51.100.0/24")
    set_sysctl(n2, "net.ipv4.ip_forward", "1")
    offloads_off(n1, ["n1-eth0"], ("rx", "tx", "tso", "gso", "gro", "sg"))
    return {
        "n1_addr": _in(n1, "ip", "-4", "-o", "addr", "show", "n1-eth0"),
        "n1_link": _in(n1, "ip", "-o", "link", "show", "n1-eth0"),
        "n1_route": _in(n1, "ip", "route", "show", "198.51.100.0/24"),
        "n2_local": _in(n2, "ip", "route", "show", "table", "local", "198.51.100.0/24"),
        "n2_forward": _in(n2, "sysctl", "-n", "net.ipv4.ip_forward"),
        "n1_offloads": _in(n1, "ethtool", "-k", "n1-eth0"),
        "ping": _in(n1, "ping", "-c1", "-W2", "198.51.100.9"),
        "updated": f"{intf.updateIP()} {intf.updateMAC()} {intf.isUp()}",
    }


def test_veth_addresses_routes_sysctl_offloads_match_the_tools(
    two_namespaces: tuple[FakeNode, FakeNode],
) -> None:
    out = _veth_and_config(two_namespaces)
    assert "10.77.0.1/24" in out["n1_addr"]
    assert "02:00:00:00:00:01" in out["n1_link"] and "state UP" in out["n1_link"]
    assert "via 10.77.0.2" in out["n1_route"]
    assert out["n2_local"].startswith("local 198.51.100.0/24 dev lo")
    assert out["n2_forward"].strip() == "1"
    features = dict(
        line.strip().split(": ", 1) for line in out["n1_offloads"].splitlines() if ": " in line
    )
    for feature in ("rx-checksumming", "tx-checksumming", "scatter-gather",
                    "tcp-segmentation-offload", "generic-segmentation-offload",
                    "generic-receive-offload"):  # fmt: skip
        assert features[feature].startswith("off"), (feature, features[feature])
    assert " 0% packet loss" in out["ping"]
    assert out["updated"] == "10.77.0.1 02:00:00:00:00:01 True"


def test_listening_reads_the_namespace_socket_tables(
    two_namespaces: tuple[FakeNode, FakeNode],
) -> None:
    n1, _ = two_namespaces
    assert not listening(n1, 8443) and not listening(n1, 5353, "udp")
    tcp = subprocess.Popen(["nsenter", "-t", str(n1.pid), "-n", "python3", "-c",
                            "import socket,time; s=socket.socket(socket.AF_INET6); "
                            "s.bind(('::', 8443)); s.listen(); "
                            "u=socket.socket(type=socket.SOCK_DGRAM); u.bind(('0.0.0.0', 5353)); "
                            "time.sleep(30)"])  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not listening(n1, 8443):
            time.sleep(0.05)
        assert listening(n1, 8443), "an IPv6 (dual-stack) listener counts"
        assert listening(n1, 5353, "udp")
        assert not listening(n1, 443)
    finally:
        tcp.kill()
        tcp.wait()
