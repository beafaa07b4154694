"""What every circumvention method adapter does, and what a probe needs to go through one.

An adapter turns one method of a scenario (a kind, a server address and port, validated
options) into real processes:

1. `prepare()` writes the server's and the client's configuration into the method's directory of
   the run, with keys and certificates made for this run;
2. `start_server(node)` starts the server side in a cloud (or foreign) host and waits until it is
   ready; `start_client(node)` does the same for the client in a subscriber host and returns an
   `Access`: how a probe reaches a target through it;
3. `stop()` ends every process it started (logs stay in the directory).

The probe itself (`tspulab.methods.probe`) then fetches a target *through the tool's own client*:
its local SOCKS5 or HTTP proxy, or the routes of the TUN interface it brought up.
"""

from __future__ import annotations

import hashlib
import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tspulab.lab.record import RunRecord
from tspulab.methods.keys import MethodCA
from tspulab.methods.options import Options
from tspulab.methods.process import Node, Processes


@dataclass(frozen=True)
class Access:
    """How traffic goes through a running method's client.

    Exactly one of: `socks5` (host:port of a local SOCKS5 proxy; names are resolved by the far
    side), `http_proxy` (host:port of an HTTP proxy that takes CONNECT), `tun` (an interface
    with routes: the probe connects to the target as usual and the kernel sends it through), or
    `front` (domain fronting: the probe connects to `front_address` with `front` as its TLS name
    and the target's name only in the Host header; `ca` verifies the edge), or `command` (a
    user's command that fetches the URL itself: `tspulab.methods.custom.command_probe`), or
    `mtproto` (a tg://proxy link: the project's MTProto client asks the lab's data centre
    through that proxy, `tspulab.methods.mtproto_client`)."""

    socks5: str | None = None
    http_proxy: str | None = None
    tun: str | None = None
    front: str | None = None
    front_address: str | None = None
    ca: str | None = None
    command: str | None = None
    mtproto: str | None = None

    def curl_args(self) -> list[str]:
        if self.socks5:
            return ["--socks5-hostname", self.socks5]
        if self.http_proxy:
            return ["--proxytunnel", "--proxy", f"http://{self.http_proxy}"]
        if self.tun:
            # Bound to the interface: the method's routing table (tunnel.add_routes) applies.
            return ["--noproxy", "*", "--interface", self.tun]
        if self.front:
            return ["--noproxy", "*", "--connect-to", f"{self.front}:443:{self.front_address}"]
        return ["--noproxy", "*"]

    def describe(self) -> str:
        if self.socks5:
            return f"SOCKS5 {self.socks5}"
        if self.http_proxy:
            return f"HTTP CONNECT {self.http_proxy}"
        if self.front:
            return f"fronted as {self.front} via {self.front_address}"
        if self.command:
            return "command"
        if self.mtproto:
            return "MTProto proxy " + self.mtproto.partition("&secret=")[0].removeprefix("tg://")
        return f"TUN {self.tun}"


@dataclass
class MethodContext:
    """Where and how one method runs in one run."""

    name: str
    """The method's name in the scenario (a slug); it names files and interfaces."""
    directory: Path
    """`<run dir>/methods/<name>`: configurations, keys, logs."""
    server_address: str
    port: int
    options: Options
    record: RunRecord | None = None
    local_port: int = 0
    """The client's local proxy port (0: derived from the name)."""
    clients: int = 1
    """How many subscriber hosts may run a client (WireGuard makes a key and address each)."""
    ca: MethodCA | None = field(default=None, repr=False)
    scenario_path: Path | None = None
    """The scenario file (custom methods read files beside it and name its lines)."""

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.local_port == 0:
            self.local_port = 20000 + int(self.tag(4), 16) % 20000
        if self.ca is None:
            self.ca = MethodCA(self.directory / "pki", name=f"tspulab {self.name} CA")

    def tag(self, n_hex: int = 6) -> str:
        """A hex tag of this method in this run (its directory is under the run directory):
        interface names and wireguard-go's UAPI sockets, which live in /var/run/wireguard for
        every namespace of the machine, must not clash between methods or between runs."""
        return hashlib.blake2b(str(self.directory).encode(), digest_size=8).hexdigest()[:n_hex]

    def route_table(self) -> int:
        """The routing table of the method's TUN routes (tunnel.add_routes)."""
        return 1000 + int(self.tag(4), 16) % 30000

    def tunnel_net(self) -> ipaddress.IPv4Network:
        """A /24 for the method's tunnel addresses, in 172.16.0.0/12 (the lab uses 10/8 and
        100.64/10), derived from the name so two methods in one host do not collide."""
        h = int(self.tag(4), 16)
        return ipaddress.IPv4Network(f"172.{16 + (h >> 8) % 16}.{h % 256}.0/24")

    def interface(self, prefix: str) -> str:
        """An interface name unique to this method (at most 15 characters)."""
        return f"{prefix}{self.tag(15 - len(prefix))}"

    @property
    def certs(self) -> MethodCA:
        assert self.ca is not None
        return self.ca


class Method(ABC):
    """One adapter instance per method and run."""

    kind: ClassVar[str]
    tool: ClassVar[str]
    """The programs it runs, for messages and docs ('openvpn', 'sing-box', ...)."""
    parallel_clients: ClassVar[bool] = False
    """Whether `start_client` may run for several hosts at once (the lab then starts each
    host's client without waiting for another host's: a blocked handshake waits 20-30 s)."""

    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx
        self.processes = Processes(ctx.directory, ctx.record)
        self.prepared = False
        self.undo: list[tuple[Node, str]] = []
        """Commands that undo set-up done in a node (routes, rules, nft tables), run at stop."""

    @property
    def directory(self) -> Path:
        return self.ctx.directory

    def prepare(self) -> None:
        """Write configurations and keys (idempotent)."""
        if not self.prepared:
            self._prepare()
            self.prepared = True

    @abstractmethod
    def _prepare(self) -> None: ...

    @abstractmethod
    def start_server(self, node: Node) -> None:
        """Start the server side in `node` and return once it is ready."""

    @abstractmethod
    def start_client(self, node: Node) -> Access:
        """Start a client in `node` (one per subscriber host, up to `ctx.clients`), wait until it
        is ready, and say how to go through it."""

    def health(self, node: Node) -> str | None:
        """Why a probe from `node` cannot go through now (a process the method needs has
        exited), or None; asked before each probe."""
        return None

    def stop_client(self, node: Node) -> None:
        """End what this method runs in `node` (a client that failed to start) and undo its
        set-up there."""
        self.processes.stop(node=node)
        for item in [u for u in self.undo if u[0] is node][::-1]:
            self.undo.remove(item)
            node.cmd(f"{item[1]} 2>/dev/null")

    def stop(self) -> None:
        """End the processes, then undo the set-up, newest first; logs stay."""
        self.processes.stop()
        while self.undo:
            node, command = self.undo.pop()
            node.cmd(f"{command} 2>/dev/null")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ctx.name} {self.ctx.server_address}:{self.ctx.port}>"
