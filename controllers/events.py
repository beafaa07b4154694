"""JSON-lines event log of the controller, flushed per event so a killed run keeps it."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
LOG = logging.getLogger("tspulab.controllers")


class EventLog:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        if self._path is None:
            return
        line = json.dumps({"t": time.time(), "event": event, **fields})
        with self._lock, self._path.open("a") as f:
            f.write(line + "\n")


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
