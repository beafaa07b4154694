"""What every running lab of a scenario shares: the context-manager lifecycle and its signals.

Bring-up happens in `__enter__` (a failure tears down whatever came up), teardown in `__exit__`;
SIGTERM is turned into KeyboardInterrupt for the duration, so `kill` tears the lab down too.
Subclasses set `lab`, `writer` and implement `start()`; `_before_teardown()` stops what they
started beside the lab (a capture, for instance).
"""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any, Self

from tspulab.lab.network import Lab
from tspulab.metrics.results import ResultWriter


class Interrupted(KeyboardInterrupt):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


class LabRun:
    lab: Lab
    writer: ResultWriter
    leftovers: list[str]
    _previous_sigterm: Any = None

    def start(self) -> None:
        raise NotImplementedError

    def _before_teardown(self) -> None:
        """Stop what the run started beside the lab (nothing by default)."""

    def __enter__(self) -> Self:
        self._previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> list[str]:
        self.lab.record.note(teardown="started")
        self._before_teardown()
        self.writer.close()
        try:
            self.leftovers = self.lab.stop()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None
        return self.leftovers
