"""Progress of a long run: a live status line on a terminal, plain lines elsewhere (CI, pipes).

The runner makes one `Progress(total_steps, total_probes)`, calls `.stage(label, scenario_time)`
as each timeline entry is applied, `.probe_done(result)` after each probe, `.log(text)` for
anything else worth a line, and `.close()` at the end (or uses it as a context manager).

On a terminal the status line (rich Live) shows the stage, the scenario time, probes done out of
the total, ok and blocked counts and the elapsed time; log lines scroll above it. Without a
terminal nothing is redrawn: each stage, each log line and each probe is one plain line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text


def _field(result: Any, name: str, default: Any = None) -> Any:
    """A field of a ProbeResult or of its JSON dict."""
    if isinstance(result, dict):
        return result.get(name, default)
    return getattr(result, name, default)


class Progress:
    def __init__(
        self,
        total_steps: int,
        total_probes: int,
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        """`live` None: a live line exactly when `stream` (default stdout) is a terminal."""
        self.total_steps = total_steps
        self.total_probes = total_probes
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.is_live = self.console.is_terminal if live is None else live
        self._clock = clock
        self._t0 = clock()
        self.steps_done = 0
        self.label = ""
        self.scenario_time: str | None = None
        self.done = 0
        self.ok = 0
        self.blocked = 0
        self._live: Live | None = None
        if self.is_live:
            self._live = Live(
                self._render(), console=self.console, refresh_per_second=4, transient=False
            )
            self._live.start()

    def _render(self) -> Text:
        elapsed = self._clock() - self._t0
        text = Text()
        text.append(f"step {self.steps_done}/{self.total_steps} ", style="bold")
        text.append(self.label or "-", style="bold cyan")
        if self.scenario_time:
            text.append(f" · {self.scenario_time}")
        text.append(f" · probes {self.done}/{self.total_probes} · ")
        text.append(f"{self.ok} ok", style="green")
        text.append(" · ")
        text.append(f"{self.blocked} blocked", style="red")
        text.append(f" · {elapsed:,.0f} s")
        return text

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False)

    def stage(self, label: str, scenario_time: str | None = None) -> None:
        """A timeline entry was applied (or the run entered its first step)."""
        self.steps_done += 1
        self.label = label
        self.scenario_time = scenario_time
        if self.is_live:
            self._refresh()
        else:
            when = f" at {scenario_time}" if scenario_time else ""
            self._line(
                f"step {self.steps_done}/{self.total_steps}: {label}{when} "
                f"(probes so far {self.done}/{self.total_probes})"
            )

    def probe_done(self, result: Any) -> None:
        """Count one finished probe (a ProbeResult or its JSON dict)."""
        self.done += 1
        ok = bool(_field(result, "ok"))
        self.ok += ok
        self.blocked += not ok
        if self.is_live:
            self._refresh()
            return
        isp = _field(result, "isp")
        method = _field(result, "method") or "direct"
        via = "" if method == "direct" else f" via {method}"
        self._line(
            f"  [{self.done}/{self.total_probes}] {'ok ' if ok else 'BLK'} "
            f"{_field(result, 'subscriber', '?')}{f' ({isp})' if isp else ''} → "
            f"{_field(result, 'service', '?')}{via} {_field(result, 'kind', '')} "
            f"({_field(result, 'outcome', '?')})"
        )

    def log(self, text: str) -> None:
        """A message line; on a terminal it scrolls above the status line."""
        self._line(text)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
        else:
            self._line(
                f"done: {self.done}/{self.total_probes} probes, {self.ok} ok, "
                f"{self.blocked} blocked, {self._clock() - self._t0:,.0f} s"
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
