"""Measurements written as JSON lines the moment they are taken.

Each line is flushed and fsync'd, so a run killed at any point keeps every finished measurement;
readers skip a torn last line. A full disk does not end a run: what cannot be written is held
and written as soon as the file system takes it again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class ResultWriter:
    """Appends one JSON line per record, flushed and fsync'd at once.

    A write the file system refuses (ENOSPC: a full disk; EIO) does not end the run: the bytes not
    yet written are held in memory, in order, and written first at the next `write` or `flush`
    (a line cut by a full disk is completed then, not repeated). `held` says how many records
    are waiting, `error` the last refusal; `on_error(err, held)` is called on each refusal.

    Probes of one round write from a thread pool: a lock keeps lines whole and in one piece
    (os.write releases the GIL while it holds a view of the buffer, which another thread's
    append would try to resize: BufferError)."""

    def __init__(self, path: Path, on_error: Callable[[OSError, int], None] | None = None) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending = bytearray()
        self._pending_records = 0
        self.count = 0
        self.error: OSError | None = None
        self.on_error = on_error
        self._lock = threading.RLock()

    @property
    def held(self) -> int:
        """Records given to `write` that are not (wholly) in the file yet."""
        return self._pending_records

    def write(self, record: dict[str, Any]) -> None:
        self.write_lines([json.dumps(record, sort_keys=True)])

    def write_lines(self, lines: Iterable[str]) -> bool:
        """Append records already serialised (one JSON object a line, without its newline: a
        batch of the controller's events), held like `write`'s; True when nothing is left over."""
        data = b"".join((line + "\n").encode() for line in lines)
        with self._lock:
            n = data.count(b"\n")
            self._pending += data
            self._pending_records += n
            self.count += n
            return self._flush()

    def flush(self) -> bool:
        """Write what is held; True when nothing is left over."""
        with self._lock:
            return self._flush()

    def _flush(self) -> bool:
        if self._fd is None or not self._pending:
            return not self._pending
        try:
            while self._pending:
                written = os.write(self._fd, self._pending)
                self._pending_records -= self._pending[:written].count(b"\n")
                del self._pending[:written]
            os.fsync(self._fd)
        except OSError as err:
            self.error = err
            if self.on_error is not None:
                self.on_error(err, self._pending_records)
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            self._flush()
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line after a kill
    return out
