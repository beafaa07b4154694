"""Inside a run sandbox: its PID 1, and the job it runs (`tspulab.lab.sandbox` starts it).

    unshare ... -- python -m tspulab.lab.sandbox_init JOB    PID 1: mounts, reaps, passes signals on
       └ the job (own process group)                        fn(*args, **kwargs), its outcome pickled

PID 1 mounts the run's own /sys and a private /tmp (the paths the job needs bound back in), brings
the loopback up, writes the namespaces' inodes for the caller outside, forks the job and then only
reaps (daemons that detach become its children) and passes SIGINT, SIGTERM and SIGHUP on. The job
writes its outcome (`encode_outcome`) where the caller reads it. `bind_resolv_conf` is for the lab,
once it has the run's resolver.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import io
import json
import os
import pickle
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tspulab.lab.sandbox import (
    FORWARDED_SIGINT_FILE,
    NAMESPACES_FILE,
    SANDBOX_ENV,
    Job,
    RemoteError,
    namespace_ids,
    require_sandbox,
    under_tmp,
)

_MS_BIND = 4096
_MS_REC = 16384


def _libc_mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """The paths that are not inside another one of them."""
    ordered = sorted({p for p in paths if p.exists()}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(k == path or k in path.parents for k in kept):
            kept.append(path)
    return kept


def private_tmp(share: Iterable[Path]) -> None:
    """A tmpfs over /tmp, with the shared paths under the old /tmp bound back in place."""
    keep = _outermost(p.resolve() for p in share if under_tmp(p.resolve()))
    held = [(p, os.open(p, os.O_PATH)) for p in keep]
    _libc_mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777")
    for path, fd in held:
        if path.is_dir() or Path(f"/proc/self/fd/{fd}").is_dir():
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        _libc_mount(f"/proc/self/fd/{fd}", str(path), None, _MS_BIND | _MS_REC, None)
        os.close(fd)


def loopback_up() -> None:
    """A new network namespace's loopback starts down; the controller listens there."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, ifr)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def bind_resolv_conf(resolv_conf: Path) -> None:
    """Every client of the run resolves with the lab's DNS: one bind mount in the run's mount
    namespace (Mininet hosts share it; only their network namespaces are their own)."""
    require_sandbox("bind_resolv_conf")
    _libc_mount(str(resolv_conf), "/etc/resolv.conf", None, _MS_BIND, None)


#: Modules whose exceptions are part of the product's contract (ScenarioError, MethodError,
#: LabError, RunInterrupted...): they come back as themselves whatever their __init__ takes.
PRODUCT_MODULES = ("tspulab.", "controllers.", "topologies.")


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> Any:
    """An exception as it was raised, without calling its __init__ again: pickle's default
    calls `cls(*exc.args)`, which fails for an __init__ that takes other arguments
    (`ScenarioError(errors)` gets its own message and breaks on it)."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _OutcomePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException) and type(obj).__module__.startswith(PRODUCT_MODULES):
            return _rebuild_exception, (type(obj), obj.args, dict(obj.__dict__))
        return NotImplemented


def encode_outcome(outcome: tuple[str, Any, str]) -> bytes:
    """("ok", value, "") or ("error", exception, traceback text), pickled for the caller.

    The product's exceptions travel as themselves (their fields too: a ScenarioError's
    `errors`), with the traceback text as a note added by the caller; any other exception
    travels as itself when it survives a pickle round trip (ValueError, OSError, AssertionError,
    subprocess.CalledProcessError), and otherwise as a RemoteError that carries its type and the
    remote traceback."""
    buffer = io.BytesIO()
    try:
        _OutcomePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(outcome)
        payload = buffer.getvalue()
        pickle.loads(payload)  # an exception whose __init__ needs other arguments fails here
    except Exception as exc:
        text = outcome[2] or repr(outcome[1])
        kind = type(outcome[1]).__name__
        payload = pickle.dumps(
            ("error", RemoteError(f"{kind} ({exc} when sent back):\n{text}"), "")
        )
    return payload


def _run_job(job: Job) -> int:
    try:
        value = job.fn(*job.args, **job.kwargs)
        outcome: tuple[str, Any, str] = ("ok", value, "")
    except BaseException as exc:  # sent back to the caller, who re-raises it
        outcome = ("error", exc, traceback.format_exc())
    payload = encode_outcome(outcome)
    tmp = job.result_path.with_suffix(".part")
    tmp.write_bytes(payload)
    tmp.replace(job.result_path)
    return 0 if outcome[0] == "ok" else 1


def _pid1(job_path: Path) -> int:
    job: Job = pickle.loads(job_path.read_bytes())
    _libc_mount("sysfs", "/sys", "sysfs", 0, None)
    # Code the job may still import (the clone, its venv, the caller's sys.path) stays visible
    # even when it lives under /tmp, as a CI clone may.
    source = [Path(__file__).resolve().parents[2], Path(sys.prefix), *map(Path, job.sys_path)]
    private_tmp([*job.share, job_path.parent, Path.cwd(), *(p for p in source if p.is_dir())])
    loopback_up()
    ids = namespace_ids()
    os.environ[SANDBOX_ENV] = ",".join(f"{k}:{v}" for k, v in ids.items())
    # For the caller outside, who waits until nothing is left in these namespaces.
    (job_path.parent / NAMESPACES_FILE).write_text(json.dumps(ids))
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)  # the terminal's Ctrl-C reaches PID 1, which forwards it once
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(
                sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler
            )
        code = 1
        try:
            code = _run_job(job)
        finally:
            os._exit(code)

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)
        if signum == signal.SIGINT:
            with contextlib.suppress(OSError):
                (job_path.parent / FORWARDED_SIGINT_FILE).touch()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        pid, status = os.wait()  # reaps orphans too (daemons that detached)
        if pid == child:
            return os.waitstatus_to_exitcode(status) & 0xFF


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tspulab.lab.sandbox_init JOB_FILE (started by run_in_sandbox)")
        return 2
    if os.getpid() != 1:
        print("tspulab.lab.sandbox_init: must run as PID 1 of a new PID namespace", file=sys.stderr)
        return 2
    return _pid1(Path(argv[0]))


if __name__ == "__main__":
    # Run as the imported module, not as __main__: what the job sends back (_rebuild_exception)
    # must unpickle as tspulab.lab.sandbox_init's in the caller.
    from tspulab.lab import sandbox_init as _module

    sys.exit(_module.main(sys.argv[1:]))
