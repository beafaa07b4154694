"""A small live bench for strategies: subscriber, first hop, TSPU box and server in namespaces.

    client ns ──── gw ns (router) ──── tspu ns (router) ──── server ns
    10.13.1.2    .1.1 | .2.1         .2.2 | .3.1           10.13.3.2 (nginx :443, QUIC :443)
                             capture ▲ (tspu ns, from-gateway port)

Everything is real: openssl s_client (tlsclient.py; or the aioquic client) in the client
namespace talks to nginx (or an aioquic server) with a certificate for the target name from a
per-bench CA, over two routers that decrement the TTL and answer ICMP time-exceeded. tcpdump in
the TSPU namespace records what the box would see (the packets as they arrive from the gateway,
both directions), and the capture is replayed through the DPI engine of a profile (verdicts.py):
the verdict the box would give. With ``censor(profile)`` the same engine also acts live in the
TSPU namespace (censor.py): packets are dropped or reset as the profile says.

A fake with TTL 2 reaches the box and expires there; disorder's TTL-1 part expires at the
gateway, before the box (§1: the TSPU sits at hop >= 2 from most subscribers, not at the
subscriber's own router).

Offloads are off on every veth (no TSO/GSO/GRO, checksums computed in software), so the capture
holds the segments and checksums that were really sent. Namespaces are named
``tsl<random><n>-{c,g,t,s}``; ``close()`` ends the processes this bench started (by PID) and
deletes its namespaces, nothing else. In a run sandbox (how ``tspulab strategies`` runs it)
/run/netns and /etc/hosts are the run's own, so a SIGKILL leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tspulab.lab.pki import RunCA
from tspulab.lab.sandbox import current_sandbox
from tspulab.strategies import tlsclient
from tspulab.strategies.spec import Strategy

CLIENT = "10.13.1.2"
SERVER = "10.13.3.2"
SUBSCRIBER_NET = "10.13.1.0/24"
PROXY_PORT = 1080
_counter = itertools.count()
_LINKS = (  # (ns a, ifname a, addr a, ns b, ifname b, addr b)
    ("c", "up0", "10.13.1.2/24", "g", "down0", "10.13.1.1/24"),
    ("g", "up0", "10.13.2.1/24", "t", "down0", "10.13.2.2/24"),
    ("t", "up0", "10.13.3.1/24", "s", "down0", "10.13.3.2/24"),
)
_ROUTES = {
    "c": ["default via 10.13.1.1"],
    "g": ["default via 10.13.2.2"],
    "t": ["10.13.1.0/24 via 10.13.2.1"],
    "s": ["default via 10.13.3.1"],
}
CAPTURE_NS, CAPTURE_IF = "t", "down0"


class BenchError(RuntimeError):
    pass


def missing_programs() -> list[str]:
    need = ("ip", "iptables", "tcpdump", "curl", "nginx", "ethtool", "ss")
    return [p for p in need if shutil.which(p) is None]


@dataclass
class Trial:
    """One connection attempt through the bench."""

    ok: bool
    """The real server answered with its page (or the QUIC handshake and a PING completed)."""
    ttfb_s: float | None
    detail: str
    started: float


@dataclass
class Bench:
    target: str = "twitter.com"
    workdir: Path | None = None
    quic: bool = False
    name: str = field(init=False)
    ns: dict[str, str] = field(init=False, default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        # Random, not the PID: in a run sandbox every runner is PID 2 or so, and /run/netns is
        # the machine's.
        self.name = f"tsl{secrets.token_hex(3)}{next(_counter)}"
        self.dir = Path(self.workdir or tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._etc = Path("/etc/netns")

    # --- bring-up -------------------------------------------------------------------------

    def __enter__(self) -> Bench:
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def up(self) -> None:
        missing = missing_programs()
        if missing:
            raise BenchError(f"missing programs: {', '.join(missing)} (run scripts/setup.sh)")
        if current_sandbox() is not None:
            # The run's own /run/netns (its mount namespace is private): nothing of the bench's
            # namespaces outlives the sandbox, even after a SIGKILL.
            Path("/run/netns").mkdir(parents=True, exist_ok=True)
            _run("mount", "-t", "tmpfs", "tmpfs", "/run/netns")
        for role in "cgts":
            self.ns[role] = f"{self.name}-{role}"
            _run("ip", "netns", "add", self.ns[role])
            self.sh(role, "ip link set lo up")
        for a, ifa, addr_a, b, ifb, addr_b in _LINKS:
            _run("ip", "link", "add", ifa, "netns", self.ns[a], "type", "veth",
                 "peer", "name", ifb, "netns", self.ns[b])  # fmt: skip
            for role, ifname, addr in ((a, ifa, addr_a), (b, ifb, addr_b)):
                self.sh(role, f"ip addr add {addr} dev {ifname}")
                self.sh(role, f"ethtool -K {ifname} tso off gso off gro off tx off rx off")
                self.sh(role, f"ip link set {ifname} up")
        for role, routes in _ROUTES.items():
            for route in routes:
                self.sh(role, f"ip route add {route}")
        for role in "gt":
            self.sh(role, "sysctl -qw net.ipv4.ip_forward=1")
        # The client resolves the target name to the server (the QUIC client looks it up).
        names = f"127.0.0.1 localhost\n{SERVER} {self.target}\n"
        if current_sandbox() is not None:
            # In a run sandbox the mount namespace is the run's own: bind a hosts file over
            # /etc/hosts, nothing outside changes.
            private = self.dir / "hosts"
            private.write_text(names)
            _run("mount", "--bind", str(private), "/etc/hosts")
        else:
            # Outside one, the file ``ip netns exec`` binds for the client's namespace.
            hosts = self._etc / self.ns["c"]
            hosts.mkdir(parents=True, exist_ok=True)
            (hosts / "hosts").write_text(names)
        self._start_servers()

    def _start_servers(self) -> None:
        ca = RunCA(self.dir / "pki", name="tspulab strategy bench CA")
        self.ca_path = ca.ca_path
        cert = ca.issue("server", [self.target])
        conf = self.dir / "nginx.conf"
        (self.dir / "tmp").mkdir(exist_ok=True)
        conf.write_text(_NGINX.format(d=self.dir, cert=cert.cert, key=cert.key, name=self.target,
                                      server=SERVER))  # fmt: skip
        self.marker = f"tspulab-bench {self.target}"
        self.spawn("s", ["nginx", "-c", str(conf)], "nginx")
        self._wait_listening("s", "t", 443)
        if self.quic:
            self.spawn("s", [sys.executable, "-m", "tspulab.lab.quicpeer", "server",
                             "--cert", str(cert.cert), "--key", str(cert.key), "--bind", SERVER],
                       "quic server")  # fmt: skip
            self._wait_listening("s", "u", 443)

    def _wait_listening(self, role: str, proto: str, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sh(role, f"ss -Hl{proto}n 'sport = :{port}'", check=False).strip():
                return
            time.sleep(0.05)
        raise BenchError(f"nothing listens on {proto}/{port} in {self.ns[role]}; see {self.dir}")

    # --- processes ------------------------------------------------------------------------

    def sh(self, role: str, command: str, check: bool = True) -> str:
        out = subprocess.run(["ip", "netns", "exec", self.ns[role], "sh", "-c", command],
                             capture_output=True, text=True)  # fmt: skip
        if check and out.returncode != 0:
            raise BenchError(f"{self.ns[role]}: {command}: {out.stderr.strip()}")
        return out.stdout

    def spawn(
        self, role: str, argv: list[str], label: str, ready: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process in a namespace; with ``ready``, wait for that line on its stdout."""
        log = open(self.dir / f"{label.replace(' ', '-')}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[role], *argv],
            stdout=subprocess.PIPE if ready else log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        if ready:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode(errors="replace")
            if not line.startswith(ready):
                self.stop(proc)
                tail = (self.dir / f"{label.replace(' ', '-')}.log").read_text()[-600:]
                raise BenchError(f"{label} did not start: {line.strip()!r} {tail}")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=3)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc)
        for role in "sgtc":
            if role in self.ns:
                subprocess.run(["ip", "netns", "del", self.ns[role]], capture_output=True)
        if "c" in self.ns:
            shutil.rmtree(self._etc / self.ns["c"], ignore_errors=True)
        self.ns.clear()

    # --- capture and strategies -----------------------------------------------------------

    @contextlib.contextmanager
    def capture(self, path: Path, at: str = "box") -> Iterator[Path]:
        """tcpdump on the box's port towards the subscriber (``at="box"``), or on the client's
        own interface (``at="client"``: what a user would record), for the block's duration."""
        role, ifname = (CAPTURE_NS, CAPTURE_IF) if at == "box" else ("c", "up0")
        proc = subprocess.Popen(
            # --immediate-mode: without it the ring buffer hands packets over once a second,
            # and the SIGINT at the end loses the last second of the capture.
            ["ip", "netns", "exec", self.ns[role], "tcpdump", "-i", ifname, "-U",
             "--immediate-mode", "-s", "0", "-n", "-w", str(path), f"host {SERVER}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline().decode(errors="replace")
        if "listening" not in line:
            self.stop(proc)
            raise BenchError(f"tcpdump did not start: {line.strip()}")
        try:
            yield path
        finally:
            time.sleep(0.2)  # the last packets of the last trial
            self.stop(proc, signal.SIGINT)

    @contextlib.contextmanager
    def strategy(self, strategy: Strategy, port: int = 443) -> Iterator[Strategy]:
        """Run the proxy and rewriters a strategy needs, for the duration of the block."""
        spec = strategy.text()
        started: list[subprocess.Popen[bytes]] = []
        py = sys.executable
        try:
            if strategy.of_layer("stream"):
                started.append(self.spawn(
                    "c", [py, "-m", "tspulab.strategies.proxy", "--strategy", spec,
                          "--listen", f"127.0.0.1:{PROXY_PORT}"],
                    "proxy", ready="ready"))  # fmt: skip
            if strategy.of_layer("packet"):
                started.append(self.spawn(
                    "c", [py, "-m", "tspulab.strategies.rewriter", "client", "--strategy", spec,
                          "--port", str(port)], "rewriter-client", ready="ready"))  # fmt: skip
            if strategy.of_layer("server"):
                started.append(self.spawn(
                    "s", [py, "-m", "tspulab.strategies.rewriter", "server", "--strategy", spec,
                          "--port", str(port)], "rewriter-server", ready="ready"))  # fmt: skip
            yield strategy
        finally:
            for proc in reversed(started):
                self.stop(proc)

    @contextlib.contextmanager
    def censor(self, profile: str) -> Iterator[list[dict[str, Any]]]:
        """The box acting live under ``profile`` (censor.py) for the duration of the block; the
        list it yields is filled, on exit, with the censor's per-flow verdicts."""
        log = self.dir / f"censor-{next(_counter)}.jsonl"
        flows: list[dict[str, Any]] = []
        proc = self.spawn(
            "t", [sys.executable, "-m", "tspulab.strategies.censor", "--profile", profile,
                  "--registry-inline", self.target, "--subscriber-if", CAPTURE_IF,
                  "--subscriber-net", SUBSCRIBER_NET, "--log", str(log)],
            "censor", ready="ready",
        )  # fmt: skip
        try:
            yield flows
        finally:
            self.stop(proc)
            if log.exists():
                flows.extend(json.loads(line) for line in log.read_text().splitlines())

    # --- trials ---------------------------------------------------------------------------

    def tls_trial(self, strategy: Strategy, timeout: float = 4.0) -> Trial:
        """One HTTPS request with ``openssl s_client`` (tlsclient.py), through the shaping proxy
        when the strategy has stream steps."""
        proxy = f"127.0.0.1:{PROXY_PORT}" if strategy.of_layer("stream") else None
        argv = tlsclient.s_client_argv(SERVER, self.target, str(self.ca_path),
                                       strategy.of_layer("client"), proxy)  # fmt: skip
        started = time.time()
        out, first, err = tlsclient.run(["ip", "netns", "exec", self.ns["c"]], argv,
                                        self.target, timeout)  # fmt: skip
        text = out.decode(errors="replace")
        ok = text.startswith("HTTP/1.1 200") and self.marker in text
        # OpenSSL's error lines start with a thread id ("80DB...:error:"); keep the reason.
        last = err.splitlines()[-1].split(":error:")[-1] if err else ""
        detail = "ok" if ok else (last or f"got {text[:60]!r}")
        return Trial(ok, first if ok else None, detail, started)

    def quic_trial(self, timeout: float = 3.0) -> Trial:
        started = time.time()
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns["c"], sys.executable, "-m", "tspulab.lab.quicpeer",
             "client", "--host", self.target, "--ca", str(self.ca_path), "--timeout", str(timeout)],
            capture_output=True, text=True,
        )  # fmt: skip
        try:
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return Trial(False, None, out.stderr.strip()[-200:] or "no output", started)
        ok = bool(result.get("ok"))
        return Trial(ok, result.get("handshake_s") if ok else None, str(result["outcome"]), started)

    def trial(self, strategy: Strategy, transport: str = "tcp") -> Trial:
        """One connection: HTTPS over TCP, or a QUIC handshake and PING (``transport="udp"``)."""
        return self.quic_trial() if transport == "udp" else self.tls_trial(strategy)


def _run(*argv: str) -> None:
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {out.stderr.strip()}")


_NGINX = """# written by tspulab's strategy bench
daemon off;
master_process on;
user root root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type text/plain;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen {server}:443 ssl default_server;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = / {{ return 200 "tspulab-bench {name}\\n"; }}
    }}
}}
"""
