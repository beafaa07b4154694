"""Each run sealed in Linux namespaces of its own: network, PID and mount.

    tspulab / pytest (root namespaces)
     └ setpriv --pdeathsig KILL unshare --net --mount --pid --fork --kill-child --mount-proc
        └ python -m tspulab.lab.sandbox_init JOB   PID 1 of the run: mounts, reaps, passes signals
           └ the job (own process group)           the lab: OVS, os-ken, Mininet hosts, servers

This module is the outside: starting a sandbox, waiting for its outcome, draining what is left,
and the sandbox's identity; `tspulab.lab.sandbox_init` is the inside (PID 1 and the job).

Why this shape:
- The network namespace holds every interface of the run: the userspace datapath's `ovs-netdev`
  tap, the bridges' taps, the veths of the Mininet hosts (each host is a namespace nested inside
  this one). Nothing of the lab exists in the machine's root namespace, so nothing of it can reach
  a real network, and several labs run side by side without name clashes.
- The PID namespace's first process is the run's supervisor. When it dies, for any reason, the
  kernel kills every process of the namespace. `setpriv --pdeathsig KILL` makes `unshare` die with
  the process that started it, and `--kill-child` makes PID 1 die with `unshare`: SIGKILL of
  `tspulab run` (or of pytest) ends the whole run, and with its last process the network namespace
  and its interfaces go too. PID 1 must reap orphans (daemons that detach, like ovsdb-server), so
  it does nothing else: the job runs in a child.
- The mount namespace gives the run a private /tmp (the controller's control socket and any
  temporary file vanish with it), its own /sys (interfaces of this network namespace) and /proc
  (processes of this PID namespace), and one bind mount of the run's resolv.conf over
  /etc/resolv.conf for every client (`sandbox_init.bind_resolv_conf`). Paths under /tmp that the
  job needs (its run directory under pytest's tmp_path, the job file) are bound back in at the
  same place.

The job is any callable with its arguments, closures included (sent with cloudpickle); its result,
or its exception with the traceback text, comes back pickled: the product's own exceptions
(ScenarioError with its file:line:field errors, MethodError, ...) as themselves, any other as
itself when it survives pickling, else as a RemoteError with its type and the remote traceback
(`sandbox_init.encode_outcome`). `run_in_sandbox(fn, *args)` is how `tspulab run`, the tests and
the benchmarks run a lab; the lab refuses to start outside a sandbox (`require_sandbox`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle

T = TypeVar("T")

#: Set in the job's environment: the namespace inodes of the sandbox it runs in.
SANDBOX_ENV = "TSPULAB_SANDBOX"
#: Set in the job's environment: "PID:START" of the process outside that started the sandbox.
RUNNER_ENV = "TSPULAB_RUNNER"
#: In PID 1's environment from its exec: a token naming this sandbox. Namespace inodes are reused
#: as soon as a namespace is freed (the next sandbox often gets the same three), so the record
#: tells its own sandbox from a newer one by this token in the environment of the PID namespace's
#: init (`sandbox_init_token`).
SANDBOX_ID_ENV = "TSPULAB_SANDBOX_ID"
NAMESPACES = ("net", "mnt", "pid")
NAMESPACES_FILE = "namespaces.json"
#: Written by PID 1 when it passes a SIGINT on to the job (a terminal's Ctrl-C reaches it too).
FORWARDED_SIGINT_FILE = "forwarded-sigint"
#: The default time a sandbox may run before it is killed (a run that hangs must not hang CI).
DEFAULT_TIMEOUT_S = 3600.0


class SandboxError(RuntimeError):
    """The sandbox could not be made, or it ended without a result."""


class RemoteError(RuntimeError):
    """The job raised an exception that could not be sent back as itself; its text names the
    exception's type and carries the remote traceback."""


@dataclass(frozen=True)
class Job:
    """What the sandbox runs: `fn(*args, **kwargs)`, and where its result goes."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result_path: Path
    #: paths under /tmp the job needs (bound into the private /tmp at the same place)
    share: tuple[Path, ...] = ()
    #: sys.path of the caller, so the job imports the same modules (tests included)
    sys_path: tuple[str, ...] = field(default_factory=tuple)


# --- identity ------------------------------------------------------------------------------------


def namespace_ids(pid: int | str = "self") -> dict[str, int]:
    """Inode numbers of a process's network, mount and PID namespaces (the kernel's identity)."""
    return {ns: os.stat(f"/proc/{pid}/ns/{ns}").st_ino for ns in NAMESPACES}


def current_sandbox() -> dict[str, int] | None:
    """The sandbox this process runs in, or None outside one."""
    raw = os.environ.get(SANDBOX_ENV)
    if not raw:
        return None
    ids = {k: int(v) for k, v in (part.split(":") for part in raw.split(","))}
    # An inherited variable in a process that left the sandbox's network does not count.
    return ids if ids.get("net") == namespace_ids()["net"] else None


def under_tmp(path: Path) -> bool:
    return path == Path("/tmp") or Path("/tmp") in path.parents


def require_sandbox(what: str) -> dict[str, int]:
    ids = current_sandbox()
    if ids is None:
        raise SandboxError(
            f"{what} runs only inside a run sandbox (its own network, PID and mount namespaces): "
            "start it with tspulab.lab.sandbox.run_in_sandbox(fn, ...) or `tspulab run`"
        )
    return ids


# --- starting one ---------------------------------------------------------------------------------


def processes_in(kind: str, inode: int) -> list[int]:
    """Host PIDs of live processes in the namespace `kind` with this inode."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / kind).st_ino != inode:
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            pids.append(int(entry.name))
    return pids


def init_of(pids: Iterable[int]) -> int | None:
    """The host PID of the PID namespace's init (PID 1 inside) among `pids`, if alive."""
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1":
                return pid
    return None


def sandbox_init_token(pid: int) -> str | None:
    """The sandbox token in the environment PID was started with (None if it has none)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = SANDBOX_ID_ENV.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode()
    return None


def sandbox_processes(namespaces: dict[str, int], token: str | None) -> list[int]:
    """Host PIDs of the processes in a sandbox's namespaces now.

    With its token known, only the sandbox's PID namespace counts, and only while that
    namespace's init carries the token: the kernel hands a freed namespace's inode to the next
    one, so a newer sandbox (another run's) can hold the same inodes. Without an init, the
    namespace is being ended by the kernel and what is left is still this sandbox's."""
    if token is None or "pid" not in namespaces:  # a record from before the token
        found: set[int] = set()
        for kind, inode in namespaces.items():
            found.update(processes_in(kind, inode))
        return sorted(found)
    pids = processes_in("pid", namespaces["pid"])
    init = init_of(pids)
    if init is not None and sandbox_init_token(init) != token:
        return []
    return sorted(pids)


def _start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _pid1_of(unshare_pid: int, timeout_s: float = 5.0) -> int | None:
    """The host PID of the sandbox's PID 1 (unshare's only child)."""
    path = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            children = path.read_text().split()
        except OSError:
            return None
        if children:
            return int(children[0])
        time.sleep(0.01)
    return None


def sandbox_argv(job_path: Path) -> list[str]:
    for tool in ("setpriv", "unshare"):
        if shutil.which(tool) is None:
            raise SandboxError(f"{tool} not found (util-linux): run scripts/setup.sh")
    return [
        "setpriv", "--pdeathsig", "KILL", "--",
        "unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
        "--propagation", "private", "--",
        sys.executable, "-m", "tspulab.lab.sandbox_init", str(job_path),
    ]  # fmt: skip


@dataclass
class Sandbox:
    """A started sandbox: its processes, and the way to its result."""

    proc: subprocess.Popen[bytes]
    job: Job
    workdir: Path
    #: the token in its PID 1's environment (SANDBOX_ID_ENV)
    token: str | None = None
    #: the sandbox's namespace inodes, as its PID 1 wrote them (read on first use)
    namespaces: dict[str, int] = field(default_factory=dict)

    @property
    def pid1(self) -> int | None:
        return _pid1_of(self.proc.pid)

    def signal(self, signum: int) -> None:
        """Send a signal to the run's supervisor (SIGTERM, SIGINT: it tears the lab down)."""
        pid1 = self.pid1
        if pid1 is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid1, signum)

    def kill(self, wait: bool = False) -> None:
        """SIGKILL: unshare dies, PID 1 with it, and the kernel ends the rest; with `wait`,
        return once nothing of the sandbox is left."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        if wait:
            self.proc.wait()
            self._drain()

    def processes(self) -> list[int]:
        """Host PIDs of the processes still in the sandbox's namespaces."""
        if not self.namespaces:
            with contextlib.suppress(OSError, ValueError):
                self.namespaces = json.loads((self.workdir / NAMESPACES_FILE).read_text())
        if not self.namespaces:
            return []
        return sandbox_processes(self.namespaces, self.token)

    def _drain(self, timeout_s: float = 30.0) -> None:
        """After PID 1 is gone the kernel kills the rest; wait until it has, so that when a run
        returns nothing of it exists any more."""
        deadline = time.monotonic() + timeout_s
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.02)

    def wait(self, timeout_s: float | None = None) -> Any:
        """Wait for the job; return its result or raise its exception."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            self._drain()
            self._remove_workdir()
            raise SandboxError(f"sandbox still running after {timeout_s} s: killed") from None
        self._drain()
        try:
            if not self.job.result_path.exists():
                raise SandboxError(f"sandbox ended with exit code {code} and no result")
            status, value, text = pickle.loads(self.job.result_path.read_bytes())
        finally:
            self._remove_workdir()
        if status == "ok":
            return value
        if isinstance(value, BaseException):
            if text:
                value.add_note(f"in the sandbox:\n{text}")
            raise value
        raise RemoteError(text)

    def _remove_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _shareable(path: Path) -> Path:
    """What to bind into the private /tmp for a path argument: the path, or for one that does not
    exist yet its nearest existing folder; a folder right under /tmp (a runs directory) is made
    here, so what the job writes there outlives the sandbox."""
    path = path.resolve()
    if path.exists() or not under_tmp(path):
        return path
    parent = next(p for p in path.parents if p.exists())
    if parent == Path("/tmp"):
        path.mkdir(parents=True)
        return path
    return parent


def start_sandbox(
    fn: Callable[..., Any],
    *args: Any,
    share: Iterable[Path] = (),
    interactive: bool = False,
    **kwargs: Any,
) -> Sandbox:
    """Start `fn(*args, **kwargs)` in a new sandbox and return at once. `interactive` gives the
    job this process's stdin (a terminal, for `tspulab shell`) instead of /dev/null."""
    if os.geteuid() != 0:
        raise SandboxError("a run sandbox needs root (network, PID and mount namespaces)")
    workdir = Path(tempfile.mkdtemp(prefix="tspulab-sandbox-"))
    values = (*args, *kwargs.values())
    paths = [_shareable(a) for a in values if isinstance(a, Path)]
    # An object that came from a file (a Scenario's `path`) may name files beside it.
    paths += [a.path.resolve().parent for a in values if isinstance(getattr(a, "path", None), Path)]
    job = Job(
        fn=fn,
        args=args,
        kwargs=kwargs,
        result_path=workdir / "result.pickle",
        share=tuple(Path(p) for p in (*share, *paths)),
        sys_path=tuple(sys.path),
    )
    job_path = workdir / "job.pickle"
    job_path.write_bytes(cloudpickle.dumps(job))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop(SANDBOX_ENV, None)
    env[RUNNER_ENV] = f"{os.getpid()}:{_start_time(os.getpid())}"
    env[SANDBOX_ID_ENV] = uuid.uuid4().hex
    stdin = None if interactive else subprocess.DEVNULL
    proc = subprocess.Popen(sandbox_argv(job_path), env=env, stdin=stdin)
    # Its namespaces are known once PID 1 has written them (`processes` reads them lazily).
    return Sandbox(proc, job, workdir, token=env[SANDBOX_ID_ENV])


def run_in_sandbox(
    fn: Callable[..., T],
    *args: Any,
    share: Iterable[Path] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interactive: bool = False,
    **kwargs: Any,
) -> T:
    """Run `fn(*args, **kwargs)` in a sandbox of its own and return its result.

    Ctrl-C or SIGTERM here is passed to the sandbox, which tears the lab down; a second Ctrl-C
    kills it (the kernel then ends everything of the run)."""
    box = start_sandbox(fn, *args, share=share, interactive=interactive, **kwargs)
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM here asks the run to tear down (PID 1 passes it to the job), then we go on
        # waiting for the report; SIGKILL here kills the sandbox by construction.
        previous = signal.signal(signal.SIGTERM, lambda _s, _f: box.signal(signal.SIGTERM))
    try:
        result: T = box.wait(timeout_s)
        return result
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached PID 1 too (same process group), which passed it on and
        # said so; a SIGINT sent to this process alone did not, so then pass on SIGTERM (a
        # second signal to a job already tearing down would cut its teardown and report short).
        try:
            box.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            if not (box.workdir / FORWARDED_SIGINT_FILE).exists():
                box.signal(signal.SIGTERM)
        try:
            box.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            box.kill()
        if box.proc.poll() is not None and box.job.result_path.exists():
            # The job's own interruption (a run's, naming its report) rather than ours.
            with contextlib.suppress(Exception):
                box.wait(0)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if box.proc.poll() is None:
            box.kill()
            box.proc.wait()
        box._remove_workdir()


if __name__ == "__main__":
    # `python -m tspulab.lab.sandbox JOB`: PID 1 as a caller that loaded this module before PID 1
    # moved to sandbox_init (a long test session, a shell) still starts it.
    from tspulab.lab import sandbox_init

    sys.exit(sandbox_init.main(sys.argv[1:]))
