"""The lab's interface, address, route and offload changes, made in-process through netlink.

Mininet makes every change by running `ip`, `ifconfig` or `ethtool` in a node's shell: a fork and
an exec each, about 260 for a small lab. In the test VM a process costs 40-55x what it costs on
the host (docs/vm.md), so the lab does that work here instead, with pyroute2 sockets opened inside
each node's network namespace (`IPRoute(netns=/proc/PID/ns/net)` enters the namespace only to
create the socket; no process is started) and the kernel's ethtool ioctl for offloads.
`bench/bringup_scale.py` prints the processes a bring-up still spawns (one shell per node, the
servers, OVS).

`NetlinkIntf`, `NetlinkLink` and `NetlinkNode` are drop-in Mininet classes: the same methods,
the same results, no shell commands.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from mininet.link import Intf, Link
from mininet.node import Host, Node
from pyroute2 import IPRoute
from pyroute2.ethtool import Ethtool
from pyroute2.netlink.exceptions import NetlinkError

#: The kernel's feature names behind `ethtool -K IF rx|tx|sg|tso|gso|gro off` (ethtool's
#: off_flag_def): every name starting with one of these prefixes and ending with the suffix.
OFFLOAD_FEATURES = {
    "rx": (("rx-checksum",), ""),
    "tx": (("tx-checksum-",), ""),
    "sg": (("tx-scatter-gather",), ""),
    "tso": (("tx-tcp",), "segmentation"),
    "gso": (("tx-generic-segmentation",), ""),
    "gro": (("rx-gro",), ""),
}
IFF_UP = 0x1
CLONE_NEWNET = 0x40000000
RT_TABLE_LOCAL = 255
RT_SCOPE_HOST = 254
ENOENT = 2
ENODEV = 19
EEXIST = 17


def _netns_path(node: Any) -> str:
    # A node's shell lives in the node's namespace; a switch's shell in the lab's own.
    return f"/proc/{node.pid}/ns/net"


class NetnsSockets:
    """One rtnetlink socket per network namespace, opened on first use, closed at teardown."""

    def __init__(self) -> None:
        self._sockets: dict[int, IPRoute] = {}
        self._lock = threading.Lock()

    def of(self, node: Any) -> IPRoute:
        path = _netns_path(node)
        inode = os.stat(path).st_ino
        with self._lock:
            ipr = self._sockets.get(inode)
            if ipr is None:
                # The socket belongs to the namespace it was made in (pyroute2's own netns
                # option forks a child to do this).
                with inside(node):
                    ipr = IPRoute()
                self._sockets[inode] = ipr
            return ipr

    def close(self) -> None:
        with self._lock:
            for ipr in self._sockets.values():
                ipr.close()
            self._sockets.clear()


SOCKETS = NetnsSockets()


def link_index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NetlinkError(ENODEV, f"no interface {name}")
    return int(found[0])


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def inside(node: Any) -> Iterator[None]:
    """This thread in the node's network namespace (sysctls and ioctls act on the thread's own).

    setns(2) moves the calling thread only; the thread is moved back before anything else runs
    on it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(_netns_path(node), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _offload_names(offloads: Iterable[str]) -> list[tuple[tuple[str, ...], str]]:
    return [OFFLOAD_FEATURES[o] for o in offloads]


def offloads_off(node: Any, names: Iterable[str], offloads: Iterable[str]) -> None:
    """`ethtool -K NAME <offload> off ...` for each interface, through the ethtool ioctl.

    Features are turned off by their kernel names, as ethtool does, so a feature a newer kernel
    adds to a group (tx-tcp-accecn-segmentation under tso) goes off with it; the legacy
    per-group ioctls miss those. Fixed features stay as they are, as with `ethtool -K`.
    """
    wanted = _offload_names(offloads)
    with inside(node):
        ethtool = Ethtool()
    try:
        for name in names:
            features = ethtool.get_features(name)
            for feature, state in features.features.items():
                if not state.available or not state.enable:
                    continue
                if any(feature.startswith(p) and feature.endswith(suffix)
                       for prefixes, suffix in wanted for p in prefixes):  # fmt: skip
                    state.enable = False
            ethtool.set_features(name, features)
    finally:
        ethtool.close()


#: /proc/net state column of a listening TCP socket and of a bound UDP socket.
_LISTEN_STATE = {"tcp": "0A", "udp": "07"}


def listening(node: Any, port: int, proto: str = "tcp") -> bool:
    """Whether something in the node's namespace listens on PORT (`ss -Hltn sport = :PORT`).

    /proc/PID/net/* shows the sockets of the namespace PID lives in: no process, no setns.
    """
    want = f":{port:04X}"
    for family in ("", "6"):
        try:
            with open(f"/proc/{node.pid}/net/{proto}{family}") as table:
                next(table)
                for line in table:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == _LISTEN_STATE[proto]:
                        return True
        except FileNotFoundError:  # no IPv6 in that namespace
            continue
    return False


def set_sysctl(node: Any, key: str, value: str) -> None:
    """`sysctl -w key=value` in the node's namespace (net.* sysctls are per namespace)."""
    with inside(node):
        fd = os.open("/proc/sys/" + key.replace(".", "/"), os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def add_route(node: Any, dst: str, via: str | None = None, dev: str | None = None) -> None:
    """`ip route add DST [via GW] [dev DEV]` in the node's namespace."""
    ipr = SOCKETS.of(node)
    spec: dict[str, Any] = {"dst": str(ipaddress.ip_network(dst, strict=False))}
    if via is not None:
        spec["gateway"] = via
    if dev is not None:
        spec["oif"] = link_index(ipr, dev)
    ipr.route("add", **spec)


def add_local_route(node: Any, prefix: str) -> None:
    """`ip route add local PREFIX dev lo`: the node answers on every address of PREFIX."""
    ipr = SOCKETS.of(node)
    ipr.route(
        "add", dst=str(ipaddress.ip_network(prefix, strict=False)), type="local",
        oif=link_index(ipr, "lo"), table=RT_TABLE_LOCAL, scope=RT_SCOPE_HOST,
    )  # fmt: skip


def add_address(node: Any, address: str, dev: str) -> None:
    """`ip addr add ADDRESS/LEN dev DEV`."""
    ipr = SOCKETS.of(node)
    iface = ipaddress.ip_interface(address)
    ipr.addr(
        "add", index=link_index(ipr, dev), address=str(iface.ip),
        prefixlen=iface.network.prefixlen,
    )  # fmt: skip


class NetlinkIntf(Intf):  # type: ignore[misc]
    """Mininet's Intf, configured through netlink instead of `ifconfig` in the node's shell."""

    name: str
    ip: str | None
    mac: str | None
    prefixLen: Any

    def _ipr(self) -> IPRoute:
        return SOCKETS.of(self.node)

    def _index(self) -> int:
        return link_index(self._ipr(), self.name)

    def _set_state(self, up: bool) -> None:
        self._ipr().link("set", index=self._index(), state="up" if up else "down")

    def setIP(self, ipstr: str, prefixLen: int | None = None) -> str:
        if "/" in ipstr:
            self.ip, self.prefixLen = ipstr.split("/")
        elif prefixLen is None:
            raise ValueError(f"No prefix length set for IP address {ipstr}")
        else:
            self.ip, self.prefixLen = ipstr, prefixLen
        ipr, index = self._ipr(), self._index()
        # ifconfig replaces the interface's IPv4 address; the lab gives each one address.
        for old in ipr.get_addr(index=index, family=socket.AF_INET):
            ipr.addr("del", index=index, address=old.get_attr("IFA_ADDRESS"),
                     prefixlen=old["prefixlen"])  # fmt: skip
        ipr.addr("add", index=index, address=self.ip, prefixlen=int(self.prefixLen))
        if "/" in ipstr:
            self._set_state(True)
        return ""

    def setMAC(self, macstr: str) -> str:
        self.mac = macstr
        ipr, index = self._ipr(), self._index()
        ipr.link("set", index=index, state="down")
        ipr.link("set", index=index, address=macstr)
        ipr.link("set", index=index, state="up")
        return ""

    def _link(self) -> Any:
        return self._ipr().get_links(self._index())[0]

    def updateIP(self) -> str | None:
        addrs = self._ipr().get_addr(index=self._index(), family=socket.AF_INET)
        self.ip = addrs[0].get_attr("IFA_ADDRESS") if addrs else None
        return self.ip

    def updateMAC(self) -> str | None:
        self.mac = self._link().get_attr("IFLA_ADDRESS")
        return self.mac

    def updateAddr(self) -> tuple[str | None, str | None]:
        return self.updateIP(), self.updateMAC()

    def isUp(self, setUp: bool = False) -> bool:
        if setUp:
            self._set_state(True)
            return True
        return bool(self._link()["flags"] & IFF_UP)

    def rename(self, newname: str) -> str:
        old = self.name
        if self.node and old in self.node.nameToIntf:
            self.node.nameToIntf[newname] = self.node.nameToIntf.pop(old)
        ipr, index = self._ipr(), self._index()
        ipr.link("set", index=index, state="down")
        ipr.link("set", index=index, ifname=newname)
        self.name = newname
        ipr.link("set", index=index, state="up")
        return ""

    def delete(self) -> None:
        try:
            self._ipr().link("del", index=self._index())
        except NetlinkError as exc:  # gone with its peer or its namespace: that is the goal
            if exc.code not in (ENODEV, ENOENT):
                raise
        self.node.delIntf(self)
        self.link = None

    def status(self) -> str:
        return "OK" if self._ipr().link_lookup(ifname=self.name) else "MISSING"


class NetlinkLink(Link):  # type: ignore[misc]
    """A veth pair made with one netlink request, each end created in its node's namespace."""

    def __init__(self, node1: Any, node2: Any, **params: Any) -> None:
        params.setdefault("intf", NetlinkIntf)
        super().__init__(node1, node2, **params)

    @classmethod
    def makeIntfPair(
        cls, intfname1: str, intfname2: str, addr1: str | None = None, addr2: str | None = None,
        node1: Any = None, node2: Any = None, deleteIntfs: bool = True,
    ) -> None:  # fmt: skip
        if node1 is None or node2 is None:
            raise ValueError("NetlinkLink needs both nodes (Mininet's fast links)")
        ipr = SOCKETS.of(node1)
        if deleteIntfs:
            for node, name in ((node1, intfname1), (node2, intfname2)):
                found = SOCKETS.of(node).link_lookup(ifname=name)
                if found:
                    SOCKETS.of(node).link("del", index=found[0])
        peer: dict[str, Any] = {"ifname": intfname2}
        if addr2 is not None:
            peer["address"] = addr2
        fd = os.open(_netns_path(node2), os.O_RDONLY)
        try:
            peer["net_ns_fd"] = fd
            spec: dict[str, Any] = {"ifname": intfname1, "kind": "veth", "peer": peer}
            if addr1 is not None:
                spec["address"] = addr1
            try:
                ipr.link("add", **spec)
            except NetlinkError as exc:
                raise RuntimeError(
                    f"Error creating interface pair ({intfname1},{intfname2}): {exc}"
                ) from exc
        finally:
            os.close(fd)


class NetlinkNode(Node):  # type: ignore[misc]
    """Mininet's Node with its loopback and default route set through netlink."""

    def config(self, **params: Any) -> Any:
        """Node.config: MAC, IP and default route of the first interface, loopback up."""
        r: dict[str, Any] = {}
        self.setParam(r, "setMAC", mac=params.get("mac"))
        self.setParam(r, "setIP", ip=params.get("ip"))
        self.setParam(r, "setDefaultRoute", defaultRoute=params.get("defaultRoute"))
        ipr = SOCKETS.of(self)
        ipr.link("set", index=link_index(ipr, "lo"), state=params.get("lo", "up"))
        return r

    def setDefaultRoute(self, intf: Any = None) -> None:
        """`ip route del default; ip route add default (via GW | dev INTF)`."""
        ipr = SOCKETS.of(self)
        words = str(intf).split()
        spec: dict[str, Any] = {"dst": "0.0.0.0/0"}
        if len(words) == 1:
            spec["oif"] = link_index(ipr, words[0])
        else:
            pairs = dict(zip(words[::2], words[1::2], strict=False))
            if "via" in pairs:
                spec["gateway"] = pairs["via"]
            if "dev" in pairs:
                spec["oif"] = link_index(ipr, pairs["dev"])
        try:
            ipr.route("del", dst="0.0.0.0/0")
        except NetlinkError as exc:
            if exc.code != 3:  # ESRCH: there was no default route
                raise
        ipr.route("add", **spec)


class NetlinkHost(NetlinkNode, Host):  # type: ignore[misc]
    """Mininet's Host (a plain Node) configured through netlink."""
