"""JSON-lines event log of the controller, written in batches off the packet path.

`write` only appends a line to a buffer (a few µs; opening and writing the file per event cost
~18 µs on the packet-in path). A daemon thread writes the buffer out every `FLUSH_INTERVAL_S`, and
`flush()` does it at once (the control channel's replies, exit). A run killed with SIGTERM keeps
its events: the launcher flushes on the way out (`flush_all`).

The file is written by the runner's `ResultWriter` (tspulab.metrics.results): on a full disk a
batch is not lost; what the file system refuses is held in memory, in order, and written first
at the next tick once there is room again (a line cut by the full disk is completed, not
repeated). The controller logs the refusal once and the catching up once.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tspulab.metrics.results import ResultWriter

F = TypeVar("F", bound=Callable[..., Any])
LOG = logging.getLogger("tspulab.controllers")

#: how late a line may reach the file
FLUSH_INTERVAL_S = 0.1

_LOGS: weakref.WeakSet[EventLog] = weakref.WeakSet()


class EventLog:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._pending: list[str] = []
        self._wake = threading.Event()
        self._refused = False
        self._file: ResultWriter | None = None
        if path is not None:
            self._file = ResultWriter(path, on_error=self._on_refused)
            _LOGS.add(self)
            thread = threading.Thread(target=self._flusher, name="tspulab-events", daemon=True)
            thread.start()

    def write(self, event: str, **fields: Any) -> None:
        if self._path is None:
            return
        line = json.dumps({"t": time.time(), "event": event, **fields})
        with self._lock:
            self._pending.append(line)

    def flush_soon(self) -> None:
        """Ask the writer thread not to wait for its next tick when much is pending."""
        if len(self._pending) >= 512:
            self._wake.set()

    @property
    def held(self) -> int:
        """Events the file system refused so far that wait in memory."""
        return self._file.held if self._file is not None else 0

    def flush(self) -> bool:
        """Write what is pending (and what a full disk held back); True when all is written."""
        if self._file is None:
            return True
        with self._io_lock:  # keeps batches in order; writers only wait for the swap below
            with self._lock:
                lines, self._pending = self._pending, []
            done = self._file.write_lines(lines)
            if done and self._refused:
                self._refused = False
                LOG.warning("event log %s: held events written", self._path)
            return done

    def _on_refused(self, err: OSError, held: int) -> None:
        if not self._refused:  # once per refusal, not at every tick while the disk is full
            self._refused = True
            LOG.warning(
                "event log %s: %s; %d event(s) held until there is room", self._path, err, held
            )

    def _flusher(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            try:
                self.flush()
            except OSError:
                LOG.exception("event log %s not written", self._path)


def flush_all() -> None:
    for log in list(_LOGS):
        log.flush()


atexit.register(flush_all)


def guarded(handler: F) -> F:
    """Log a handler's exception (with traceback) instead of letting it end the datapath's
    connection silently, as FAUCET wraps every handler."""

    @functools.wraps(handler)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(self, *args, **kwargs)
        except Exception as exc:
            LOG.exception("handler %s failed", handler.__name__)
            events = getattr(self, "event_log", None)
            if isinstance(events, EventLog):
                events.write(
                    "handler-error",
                    handler=handler.__name__,
                    error=repr(exc),
                    traceback=traceback.format_exc(),
                )
            return None

    return wrapper  # type: ignore[return-value]
