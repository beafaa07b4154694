"""The scenario's circumvention methods in a running lab.

Servers start in their clouds' hosts when the lab is up (each ready before the campaign's clock
starts); a subscriber host gets a method's client the first time it probes through it (a
subscriber that never uses a method runs no client). Probes from several threads are safe: a
method's clients start one at a time, or one per host at a time for a method whose adapter says
`parallel_clients`; a host's shell commands run one at a time. Everything ends with `stop()`, in
reverse order.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tspulab.lab.record import RunRecord
from tspulab.methods import adapter_class
from tspulab.methods.base import Access, Method, MethodContext
from tspulab.methods.options import Options, TorOptions
from tspulab.methods.probe import MethodProbe, probe_through
from tspulab.methods.process import MethodError, Node


class LabMethods:
    """Every non-direct method of a scenario: one adapter each, its server, its clients."""

    def __init__(
        self,
        methods: Iterable[Any],
        run_dir: Path,
        record: RunRecord | None,
        *,
        clients: int,
        log: Callable[[str], None] = print,
        scenario_path: Path | None = None,
    ) -> None:
        """`methods`: the scenario's `Circumvention` entries (name, kind, cloud, address, port,
        options); `clients`: how many subscriber hosts may use each; `scenario_path`: the file
        they come from."""
        self.log = log
        self.methods = {m.name: m for m in methods if m.kind != "direct"}
        self.adapters: dict[str, Method] = {}
        for m in self.methods.values():
            options: Options = m.options
            ctx = MethodContext(
                name=m.name,
                directory=run_dir / "methods" / m.name,
                server_address=str(m.address),
                port=int(m.port),
                options=options,
                record=record,
                clients=clients,
                scenario_path=scenario_path,
            )
            self.adapters[m.name] = adapter_class(m.kind)(ctx)
        self._access: dict[tuple[str, str], Access] = {}
        self._locks = {name: threading.Lock() for name in self.adapters}
        # A Mininet node's shell runs one command at a time: clients of different methods
        # starting in the same subscriber host (probes run in parallel) take turns for each
        # command, not for their whole start (a blocked handshake waits 30 s).
        self._nodes: dict[str, _SerialNode] = {}
        self._nodes_guard = threading.Lock()
        self._client_locks: dict[tuple[str, str], threading.Lock] = {}
        self._failures: dict[tuple[str, str], MethodError] = {}

    def _serial(self, node: Node) -> Node:
        with self._nodes_guard:
            if node.name not in self._nodes:
                self._nodes[node.name] = _SerialNode(node)
            return self._nodes[node.name]

    def addresses(self, name: str) -> list[str]:
        """Every address a method's servers use (a Tor network has one per relay)."""
        m = self.methods[name]
        first = ipaddress.ip_address(str(m.address))
        options = m.options
        if isinstance(options, TorOptions):
            count = options.relays + (1 if options.transport == "obfs4" else 0)
            return [str(first + i) for i in range(count)]
        return [str(first)]

    def start_servers(
        self, node_of_cloud: Callable[[str], Node], prefixes_of_cloud: Callable[[str], list[str]]
    ) -> None:
        """Start every method's server in its cloud's host; refuse a method whose addresses
        leave the cloud (a Tor network takes the addresses after the method's own)."""
        for name, method in self.adapters.items():
            cloud = self.methods[name].cloud
            nets = [ipaddress.ip_network(p) for p in prefixes_of_cloud(cloud)]
            outside = [
                a
                for a in self.addresses(name)
                if not any(ipaddress.ip_address(a) in n for n in nets)
            ]
            if outside:
                raise MethodError(
                    f"circumvention {name}: {', '.join(outside)} not in cloud {cloud} "
                    f"({', '.join(map(str, nets))})"
                )
            method.start_server(node_of_cloud(cloud))
            self.log(f"  method {name} ({method.kind}, {method.tool}) ready on {cloud}")

    def _client_lock(self, name: str, node: Node) -> threading.Lock:
        """The lock a client start or stop takes: the method's own (its clients start one at a
        time), or one per host for a method whose clients may start side by side."""
        if not self.adapters[name].parallel_clients:
            return self._locks[name]
        with self._nodes_guard:
            return self._client_locks.setdefault((name, node.name), threading.Lock())

    def access(self, name: str, node: Node) -> Access:
        """The way through method `name` from `node`, starting its client there once. A probe
        that waited while another probe's start of the same client failed gets that failure
        instead of trying again (each try of a blocked handshake waits out its 20-30 s)."""
        key = (name, node.name)
        seen = self._failures.get(key)
        with self._client_lock(name, node):
            failed = self._failures.get(key)
            if failed is not None and failed is not seen:
                raise failed
            if key not in self._access:
                try:
                    self._access[key] = self.adapters[name].start_client(self._serial(node))
                except MethodError as err:
                    self._failures[key] = err
                    raise
            return self._access[key]

    def drop_client(self, name: str, node: Node) -> None:
        """Stop method `name`'s client in `node` (failed, or to be started afresh: a new client
        makes new flows, which the TSPU judges under what it knows now)."""
        with self._client_lock(name, node):
            self._access.pop((name, node.name), None)
            self.adapters[name].stop_client(self._serial(node))

    def drop_clients(self, name: str, node_of: Callable[[str], Node]) -> None:
        """Stop every client of method `name` (its users stopped using it); `node_of` gives a
        host by its Mininet name."""
        for method, host in [k for k in self._access if k[0] == name]:
            self.drop_client(method, node_of(host))

    def probe(
        self,
        name: str,
        node: Node,
        url: str,
        *,
        ca: Path | None,
        timeout_s: float,
        expect_bytes: int | None = None,
        extra_curl: list[str] | None = None,
        expect_text: str | None = None,
    ) -> MethodProbe:
        """A fetch of `url` from `node` through method `name`; a client that cannot start is a
        failed probe (outcome `client-failed: ...`), as a user's app would fail to connect; so
        is a method whose server or client has exited (`method-down: ...`)."""
        try:
            problem = self.adapters[name].health(self._serial(node))
            if problem:
                raise MethodError(problem)
            access = self.access(name, node)
        except MethodError as err:
            self.drop_client(name, node)
            down = "method-down" if problem else "client-failed"
            return MethodProbe(
                method=name, url=url, ok=False, outcome=f"{down}: {err}"[:300],
                curl_exit=-1, http_code=None, size_bytes=0, ttfb_s=None, total_s=None,
                goodput_bps=None, access="", started=0.0,
            )  # fmt: skip
        return probe_through(
            node, access, url, method=name, timeout_s=timeout_s, ca=ca,
            expect_bytes=expect_bytes, extra_curl=extra_curl, expect_text=expect_text,
        )  # fmt: skip

    def stop(self) -> None:
        for method in reversed(list(self.adapters.values())):
            method.stop()
        self._access.clear()


class _SerialNode:
    """A host whose shell commands (`cmd`) run one at a time whichever thread asks; everything
    else (`popen`, `name`, ...) is the host's own."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._lock = threading.Lock()

    def cmd(self, *args: Any, **kwargs: Any) -> str:
        with self._lock:
            return str(self._node.cmd(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)
