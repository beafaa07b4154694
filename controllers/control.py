"""A small control channel into the running controller: a Unix socket, one JSON object a line.

The scenario runner uses it to change the registry while the lab runs (a registry push on the
timeline) and to read counters. Commands:

    {"cmd": "registry", "file": "/run/dir/registry-2.json"}
        -> {"ok": true, "added": n, "removed": m, "seconds": s}
    {"cmd": "stats"}  -> {"ok": true, "packet_ins": n, "judged": m}

os-ken 4 has no REST API any more; a socket in the run directory, reachable only by root, is the
least that works.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Created 0600 from the start (no window in which another user could connect); it also
        # lives in the run's private /tmp, so only the run's own processes see it at all.
        old_umask = os.umask(0o177)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old_umask)
        self._sock.listen(4)
        self._thread = threading.Thread(target=self._serve, name="tspulab-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rw") as stream:
                for line in stream:
                    try:
                        reply = self.handler(json.loads(line))
                    except Exception as exc:  # a bad command must not kill the channel
                        reply = {"ok": False, "error": repr(exc)}
                    stream.write(json.dumps(reply) + "\n")
                    stream.flush()


def send_command(path: Path, command: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """Send one command to a running controller and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        with sock.makefile("rw") as stream:
            stream.write(json.dumps(command) + "\n")
            stream.flush()
            reply: dict[str, Any] = json.loads(stream.readline())
            return reply
