"""A running lab held by another process: the lab lives in a sandbox, the caller sends it work.

A lab runs only inside a run sandbox (`tspulab.lab.sandbox`): its own network, PID and mount
namespaces, whose first process dies with the process that started it. A test process that wants
to keep one lab up across many tests (the pytest plugin, `tspulab.pytest_plugin`) therefore
cannot hold the `LiveLab` object itself; it holds a `RemoteLab`:

    test process                                   sandbox (started by RemoteLab.start)
    RemoteLab.call(fn, *args)  ── request ──>      serve(): LiveLab up, then one loop:
                               <── reply ────        fn(live, *args) -> value | exception

- The job of the sandbox (`serve`) brings the lab up, then listens on a Unix socket in a short
  private folder under /tmp that the sandbox shares (a socket file works across mount
  namespaces through the bind mount; network namespaces do not matter for it).
- A request is `fn, args, kwargs` sent with cloudpickle (closures allowed), run as
  `fn(live, *args, **kwargs)` in the sandbox; the reply is the pickled value, or the exception
  with its traceback text, re-raised in the caller. One request at a time, in order.
- Teardown is certain by construction: `close()` asks the loop to end (the lab is torn down and
  its report written); if the caller dies instead, the connection closes (the loop ends the
  same way), and when the caller's process is gone the sandbox is killed by the kernel
  (`setpriv --pdeathsig KILL`, PID namespace), interfaces and processes included.

Frames are a 4-byte big-endian length and a pickle; the socket is reachable only by root (the
folder is 0700), and only the process that made the sandbox knows where it is.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import socket
import struct
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from tspulab.lab.sandbox import Sandbox, start_sandbox
from tspulab.lab.sandbox_init import encode_outcome

#: How long a lab may take to come up before the caller gives up (the sandbox is then killed).
BRING_UP_TIMEOUT_S = 300.0
#: How long one request may take by default.
REQUEST_TIMEOUT_S = 300.0
_STOP = b"stop"


class RemoteLabError(RuntimeError):
    """The lab's sandbox ended, or did not answer in time."""


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    return _recv_exact(sock, struct.unpack(">I", head)[0])


# --- in the sandbox ------------------------------------------------------------------------------


def serve(
    scenario: Any,
    runs_dir: Path,
    socket_dir: Path,
    capture: bool,
    allow_commands: bool,
    accept_timeout_s: float = 60.0,
) -> str:
    """The sandbox's job: bring the scenario's lab up, answer requests until told to stop or the
    caller goes away, tear down, write the report; return the run directory."""
    from tspulab.methods.custom import require_allowed
    from tspulab.metrics.report import write_report
    from tspulab.scenario.live import LiveLab
    from tspulab.scenario.runner import summarise_run

    require_allowed(scenario, allow_commands)
    log_lines: list[str] = []
    live = LiveLab(scenario, runs_dir, capture=capture, log=log_lines.append)
    try:
        with live:
            (socket_dir / "run_dir").write_text(str(live.run_dir))
            _loop(live, socket_dir / "lab.sock", accept_timeout_s)
    finally:
        (live.run_dir / "lab.log").write_text("\n".join(log_lines) + "\n")
        with contextlib.suppress(Exception):  # a report is a bonus; the run's files stay
            summarise_run(live, {"lateness_s": 0.0})
            write_report(live.run_dir)
    return str(live.run_dir)


def _loop(live: Any, path: Path, accept_timeout_s: float) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(accept_timeout_s)
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return  # nobody came for the lab: tear it down
    finally:
        listener.close()
    with conn:
        _send(conn, pickle.dumps(("ok", str(live.run_dir), "")))
        while True:
            request = _recv(conn)
            if request is None or request == _STOP:
                return
            try:
                fn, args, kwargs = pickle.loads(request)
                reply: tuple[str, Any, str] = ("ok", fn(live, *args, **kwargs), "")
            except Exception as exc:  # sent back and re-raised in the caller
                reply = ("error", exc, traceback.format_exc())
            # The product's errors (a ScenarioError, a MethodError) come back as themselves; one
            # that cannot travel as a RemoteError with its type and traceback (run_in_sandbox's).
            _send(conn, encode_outcome(reply))


# --- in the caller -------------------------------------------------------------------------------


class RemoteLab:
    """A scenario's lab in a sandbox of its own, driven from this process."""

    def __init__(
        self,
        scenario: Any,
        runs_dir: Path,
        *,
        capture: bool = False,
        allow_commands: bool = False,
    ) -> None:
        self.scenario = scenario
        self.runs_dir = Path(runs_dir)
        self.capture = capture
        self.allow_commands = allow_commands
        self.box: Sandbox | None = None
        self.sock: socket.socket | None = None
        self.run_dir: Path | None = None
        self._dir: Path | None = None

    def start(self, timeout_s: float = BRING_UP_TIMEOUT_S) -> RemoteLab:
        """Bring the lab up; its error (a method that is not ready, ...) is raised here."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # A short path: a Unix socket's name is at most 107 bytes, pytest's tmp paths are long.
        self._dir = Path(tempfile.mkdtemp(prefix="tspulab-lab-", dir="/tmp"))
        self.box = start_sandbox(
            serve, self.scenario, self.runs_dir.resolve(), self._dir, self.capture,
            self.allow_commands,
        )  # fmt: skip
        path = self._dir / "lab.sock"
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            if self.box.proc.poll() is not None:
                self._ended()
            if time.monotonic() > deadline:
                self.close()
                raise RemoteLabError(f"the lab did not come up within {timeout_s:g} s")
            time.sleep(0.1)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.run_dir = Path(self._reply(timeout_s))
        return self

    def _ended(self) -> None:
        """The sandbox ended on its own: raise what it raised (its bring-up error)."""
        assert self.box is not None
        box, self.box = self.box, None
        try:
            box.wait(timeout_s=10)
        finally:
            self._cleanup()
        raise RemoteLabError("the lab's sandbox ended without an error")

    def _reply(self, timeout_s: float) -> Any:
        assert self.sock is not None and self.box is not None
        deadline = time.monotonic() + timeout_s
        self.sock.settimeout(1.0)
        while True:
            try:
                raw = _recv(self.sock)
                break
            except TimeoutError:
                if self.box.proc.poll() is not None:
                    self._ended()
                if time.monotonic() > deadline:
                    self.close()
                    raise RemoteLabError(f"no answer from the lab within {timeout_s:g} s") from None
        if raw is None:
            self._ended()
        assert raw is not None
        status, value, text = pickle.loads(raw)
        if status == "ok":
            return value
        if isinstance(value, BaseException):
            if text:
                value.add_note(f"in the lab's sandbox:\n{text}")
            raise value
        raise RemoteLabError(text)

    def call(
        self, fn: Callable[..., Any], *args: Any, timeout_s: float = REQUEST_TIMEOUT_S, **kw: Any
    ) -> Any:
        """`fn(live, *args, **kw)` in the lab's sandbox (`live`: its `LiveLab`); its value or
        its exception comes back."""
        if self.sock is None:
            raise RemoteLabError("the lab is not running")
        _send(self.sock, cloudpickle.dumps((fn, args, kw)))
        return self._reply(timeout_s)

    def close(self, timeout_s: float = 120.0) -> Path | None:
        """Tear the lab down (its report is written) and end the sandbox; the run directory."""
        box, self.box = self.box, None
        try:
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    _send(self.sock, _STOP)
                self.sock.close()
                self.sock = None
            if box is not None:
                try:
                    done = box.wait(timeout_s=timeout_s)
                    self.run_dir = Path(done)
                except Exception:
                    if box.proc.poll() is None:
                        box.kill()
                    raise
        finally:
            if box is not None and box.proc.poll() is None:
                box.kill()
                box.proc.wait()
            self._cleanup()
        return self.run_dir

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RemoteLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
