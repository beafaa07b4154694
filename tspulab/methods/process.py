"""Processes of circumvention tools in a host's namespace: start, wait until ready, stop.

A *node* is anything with Mininet's host interface: `cmd(str) -> str` runs a shell command in the
host's namespaces and `popen(argv, **kw)` starts a process there (Mininet runs it as
`mnexec -da PID argv`, which calls setsid; the test fixture's namespace nodes use
`ip netns exec` with a new session). Each tool's output goes to its own log file in the method's
directory of the run, and, when the run keeps a `RunRecord`, the PID is recorded at once so
`tspulab clean` can end it after a SIGKILL of the runner.

Readiness is always checked against the real tool (a port that listens, a line it logs, a command
that succeeds), with a timeout; a tool that exits or never gets ready raises `MethodError` naming
the tool, what was awaited, and the tail of its log.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tspulab.lab.record import RunRecord
from tspulab.lab.services import stop_process
from tspulab.lab.timescale import scaled


class Node(Protocol):
    """The part of a Mininet host the methods use."""

    name: str

    def cmd(self, *args: Any, **kwargs: Any) -> str: ...

    def popen(self, *args: Any, **kwargs: Any) -> Any: ...


class MethodError(RuntimeError):
    """A circumvention tool could not be configured, started or reached."""


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n    ".join(tail) if tail else "(log empty)"


@dataclass
class Started:
    """One process a method started: its handle, the node it runs in and its log."""

    name: str
    proc: Any
    node: Node
    log: Path
    offset: int = 0
    """Where this process's output starts in the log (a client started again appends to the
    log of the one before; readiness must not match the old one's lines)."""


@dataclass
class Processes:
    """The processes of one method in one run, stopped together, newest first."""

    directory: Path
    record: RunRecord | None = None
    started: list[Started] = field(default_factory=list)
    # Clients may start in one host while another host's client is stopped (parallel probes).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def start(
        self,
        node: Node,
        argv: Sequence[str],
        name: str,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Started:
        """Start `argv` in `node`'s namespace with its output in `<directory>/<name>.<node>.log`.

        `env` and `cwd` are applied by `env`/`sh` in the namespace, so the same argv works under
        mnexec and under `ip netns exec`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / f"{name}.{node.name}.log"
        argv = list(argv)
        if cwd is not None:
            argv = ["sh", "-c", f"cd {shlex.quote(str(cwd))} && exec {shlex.join(argv)}"]
        if env:
            argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        offset = log.stat().st_size if log.exists() else 0
        out = log.open("ab")
        try:
            proc = node.popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        if self.record is not None:
            self.record.process(proc.pid, f"{name} ({node.name})", group_leader=True)
        started = Started(name, proc, node, log, offset)
        with self._lock:
            self.started.append(started)
        return started

    def stop(self, timeout_s: float = 5.0, node: Node | None = None) -> None:
        """End every process (its whole process group: tor's obfs4proxy, nginx's workers), or
        only those in `node`."""
        with self._lock:
            keep = [s for s in self.started if node is not None and s.node is not node]
            ending = [s for s in self.started if s not in keep]
            self.started = keep
        for item in reversed(ending):
            stop_process(item.proc, timeout_s)


def _died(started: Started, tool: str, waited: str) -> MethodError:
    return MethodError(
        f"{tool} on {started.node.name} exited (status {started.proc.returncode}) while "
        f"waiting for {waited}; {started.log}:\n    {log_tail(started.log)}"
    )


def _wait(
    check: Callable[[], bool], started: Started | None, tool: str, waited: str, timeout_s: float
) -> None:
    # A slow machine (the emulated test VM, a loaded host) scales every readiness wait.
    timeout_s = scaled(timeout_s)
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        if check():
            return
        if started is not None and started.proc.poll() is not None:
            raise _died(started, tool, waited)
        if time.monotonic() > deadline:
            where = f"; {started.log}:\n    {log_tail(started.log)}" if started else ""
            node = f" on {started.node.name}" if started else ""
            raise MethodError(f"{tool}{node}: no {waited} after {timeout_s:g} s{where}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def listening(node: Node, port: int, proto: str = "tcp", address: str | None = None) -> bool:
    flag = "t" if proto == "tcp" else "u"
    out = node.cmd(f"ss -Hl{flag}n 'sport = :{port}'")
    if not out.strip():
        return False
    return address is None or any(address in line for line in out.splitlines())


def wait_listening(
    node: Node,
    port: int,
    *,
    tool: str,
    started: Started | None = None,
    proto: str = "tcp",
    address: str | None = None,
    timeout_s: float = 15.0,
) -> None:
    """Wait until something listens on `port` in `node` (the tool bound its socket)."""
    where = f"{address}:{port}" if address else f"port {port}"
    _wait(
        lambda: listening(node, port, proto, address),
        started,
        tool,
        f"{proto.upper()} listener on {where}",
        timeout_s,
    )


def wait_log(
    started: Started, pattern: str, *, tool: str, timeout_s: float = 15.0
) -> re.Match[str]:
    """Wait until the tool's log has a line matching `pattern`; return the match."""
    found: list[re.Match[str]] = []

    def check() -> bool:
        try:
            text = started.log.read_bytes()[started.offset :].decode(errors="replace")
        except OSError:
            return False
        match = re.search(pattern, text)
        if match:
            found.append(match)
        return match is not None

    _wait(check, started, tool, f"log line /{pattern}/ in {started.log.name}", timeout_s)
    return found[0]


def wait_command(
    node: Node,
    command: str,
    *,
    tool: str,
    what: str,
    started: Started | None = None,
    timeout_s: float = 15.0,
) -> None:
    """Wait until a shell command succeeds in `node` (`what` says what it shows)."""
    _wait(
        lambda: node.cmd(f"{command} >/dev/null 2>&1; echo $?").strip().endswith("0"),
        started,
        tool,
        what,
        timeout_s,
    )


def run_checked(node: Node, command: str, *, tool: str) -> str:
    """Run a set-up command in `node`; MethodError with its output when it fails."""
    out = node.cmd(f"{command} 2>&1; echo __rc=$?")
    body, _, rc = out.rpartition("__rc=")
    if rc.strip() != "0":
        raise MethodError(f"{tool} on {node.name}: `{command}` failed: {body.strip()[-400:]}")
    return body
