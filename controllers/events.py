"""JSON-lines event log of the controller, written in batches off the packet path.

`write` only appends a line to a buffer (a few µs; opening and writing the file per event cost
~18 µs on the packet-in path). A daemon thread writes the buffer out every `FLUSH_INTERVAL_S`, and
`flush()` does it at once (the control channel's replies, exit). A run killed with SIGTERM keeps
its events: the launcher flushes on the way out (`flush_all`).
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
        if path is not None:
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

    def flush(self) -> None:
        if self._path is None:
            return
        with self._io_lock:  # keeps batches in order; writers only wait for the swap below
            with self._lock:
                lines, self._pending = self._pending, []
            if lines:
                with self._path.open("a") as f:
                    f.write("\n".join(lines) + "\n")

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
