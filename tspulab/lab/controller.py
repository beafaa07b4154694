"""Start and stop the os-ken controller process of a run (127.0.0.1, a free port)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tspulab.lab.record import RunRecord
from tspulab.lab.timescale import scaled


class ControllerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class ControllerProcess:
    run_dir: Path
    record: RunRecord
    config_path: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / "controller.log"

    def start(self, timeout_s: float = 20.0) -> None:
        timeout_s = scaled(timeout_s)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "tspulab.controllers.launcher",
                "--config", str(self.config_path), "--host", self.host, "--port", str(self.port),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.record.process(self.proc.pid, "os-ken controller", group_leader=True)
        self.record.note(controller_port=self.port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControllerError(
                    f"controller exited with {self.proc.returncode}; see {self.log_path}"
                )
            if _listening(self.host, self.port):
                return
            time.sleep(0.1)
        raise ControllerError(
            f"controller not listening on {self.host}:{self.port} after {timeout_s} s"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
