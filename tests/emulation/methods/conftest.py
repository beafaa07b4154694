"""A plain three-namespace network of its own for the circumvention tools (no OVS, no Mininet).

    sub2 192.0.3.2 ── veth ── 192.0.3.1 ┐
    sub (subscriber)  192.0.2.2 ── veth ── 192.0.2.1  srv (tool servers)  198.51.100.1 ── veth ── 198.51.100.10  tgt (nginx, dnsmasq)
                                        192.0.2.32/27 (more server addresses: Tor relays)

The subscriber has no route to 198.51.100.0/24 and the server does not forward unless a VPN
method turns forwarding on: the target is reachable from the subscriber *only* through a
method, so a probe that succeeds proves the tool carried it. Names resolve from a hosts file per
namespace (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts and resolv.conf), or from the
target's dnsmasq: `target.example` is the target.
Everything is made by the fixture and removed after the module, by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tspulab.lab.pki import RunCA
from tspulab.lab.record import RunRecord
from tspulab.lab.services import BULK_BYTES, Site, start_dnsmasq, start_nginx, stop_servers

TARGET_IP = "198.51.100.10"
TARGET_NAME = "target.example"
SERVER_IP = "192.0.2.1"
SUBSCRIBER_IP = "192.0.2.2"
SUBSCRIBER2_IP = "192.0.3.2"
SERVER_PREFIX = "192.0.2.32/27"
"""More addresses of the server host (a Tor network's relays), as a cloud host owns its prefix."""


class NetnsNode:
    """A network namespace with the two methods of a Mininet host the methods use."""

    def __init__(self, ns: str, name: str) -> None:
        self.ns = ns
        self.name = name
        self._holder: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """A process in the namespace, as a Mininet host has one: the lab's netlink helpers
        (`tspulab.lab.netlink.listening`) read /proc/PID/net of it."""
        if self._holder is None:
            self._holder = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "sleep", "infinity"], start_new_session=True
            )
        return self._holder.pid

    def close(self) -> None:
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()

    def cmd(self, command: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, "sh", "-c", command],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout + done.stderr

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv], start_new_session=True, **kwargs
        )


@dataclass
class World:
    sub: NetnsNode
    srv: NetnsNode
    tgt: NetnsNode
    sub2: NetnsNode
    """A second subscriber (its own link to the server): several clients of one method."""
    run_dir: Path
    record: RunRecord
    ca: RunCA
    server_dev: str
    """The server's interface toward the subscriber: where a TSPU would see the traffic."""

    url: str = f"https://{TARGET_NAME}/"
    bulk_url: str = f"https://{TARGET_NAME}/bulk"


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    tag = f"tm{os.getpid() % 100000}"
    names = {role: f"{tag}{role}" for role in ("sub", "srv", "tgt", "sub2")}
    run_dir = tmp_path_factory.mktemp("methods")
    made_ns: list[str] = []
    hosts_dirs: list[Path] = []
    nodes: list[NetnsNode] = []
    try:
        for ns in names.values():
            _sh("ip", "netns", "add", ns)
            made_ns.append(ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            hosts = Path("/etc/netns") / ns
            hosts.mkdir(parents=True, exist_ok=True)
            hosts_dirs.append(hosts)
            (hosts / "hosts").write_text(f"127.0.0.1 localhost\n{TARGET_IP} {TARGET_NAME}\n")
            # Servers that resolve with DNS only (tor's exits) ask the target's dnsmasq.
            (hosts / "resolv.conf").write_text(f"nameserver {TARGET_IP}\n")
        sub, srv, tgt, sub2 = names["sub"], names["srv"], names["tgt"], names["sub2"]
        _sh(
            "ip",
            "link",
            "add",
            f"{tag}a",
            "netns",
            sub,
            "type",
            "veth",
            "peer",
            f"{tag}b",
            "netns",
            srv,
        )
        _sh(
            "ip",
            "link",
            "add",
            f"{tag}c",
            "netns",
            srv,
            "type",
            "veth",
            "peer",
            f"{tag}d",
            "netns",
            tgt,
        )
        _sh(
            "ip",
            "link",
            "add",
            f"{tag}e",
            "netns",
            sub2,
            "type",
            "veth",
            "peer",
            f"{tag}f",
            "netns",
            srv,
        )
        for ns, dev, addr in (
            (sub2, f"{tag}e", f"{SUBSCRIBER2_IP}/24"),
            (srv, f"{tag}f", "192.0.3.1/24"),
            (sub, f"{tag}a", f"{SUBSCRIBER_IP}/24"),
            (srv, f"{tag}b", f"{SERVER_IP}/24"),
            (srv, f"{tag}c", "198.51.100.1/24"),
            (tgt, f"{tag}d", f"{TARGET_IP}/24"),
        ):
            _sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        # The target answers the tunnel addresses the server masquerades anyway; a default route
        # back to the server keeps replies of un-NATed tools (none today) on the path.
        _sh("ip", "-n", tgt, "route", "add", "default", "via", "198.51.100.1")
        _sh("ip", "-n", srv, "route", "add", "local", SERVER_PREFIX, "dev", "lo")
        # The second subscriber reaches the server's addresses, and nothing behind it.
        _sh("ip", "-n", sub2, "route", "add", "192.0.2.0/24", "via", "192.0.3.1")
        record = RunRecord(run_dir)
        ca = RunCA(run_dir / "pki")
        world = World(
            NetnsNode(sub, "sub"),
            NetnsNode(srv, "srv"),
            NetnsNode(tgt, "tgt"),
            NetnsNode(sub2, "sub2"),
            run_dir,
            record,
            ca,
            f"{tag}b",
        )
        nodes.extend((world.sub, world.srv, world.tgt, world.sub2))
        start_nginx(world.tgt, [Site("target", (TARGET_NAME,), TARGET_IP)], ca, run_dir, record)
        start_dnsmasq(world.tgt, TARGET_IP, {TARGET_NAME: TARGET_IP}, run_dir, record)
        yield world
    finally:
        stop_servers()
        for node in nodes:
            node.close()
        for ns in made_ns:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        for d in hosts_dirs:
            shutil.rmtree(d, ignore_errors=True)


__all__ = ["BULK_BYTES", "SERVER_IP", "TARGET_IP", "TARGET_NAME", "NetnsNode", "World", "world"]
