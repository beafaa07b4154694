"""Per-cell figures: success rate with its Wilson interval, goodput and time to first byte, and
the comparison with the outcome recorded in docs/tspu-behaviour.md §6.

The Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal
approximation for small n) stays inside [0, 1] and is not degenerate at 0/n or n/n, which is
where matrix cells live: a tool either gets through a profile or not.

A cell *agrees* with its record when the observed majority (rate >= 0.5: works) is the recorded
result. A disagreement is *firm* when the whole interval lies on the other side of 0.5; with one
or two trials no interval is that narrow (1/1 gives [0.21, 1]), so the report flags every
majority disagreement and says which are firm.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tspulab.matrix.outcomes import Outcome, OutcomeTable
from tspulab.matrix.plan import Cell
from tspulab.matrix.records import TrialRecord, VerdictRecord

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes of {n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0/n and n/n the bound is exactly 0 or 1; rounding would leave it a hair inside.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


Agreement = Literal["agree", "disagree", "no-record", "not-measured"]


@dataclass(frozen=True)
class CellSummary:
    cell: Cell
    trials: int
    successes: int
    interval: tuple[float, float]
    ttfb_ms: float | None
    """Median over the successful trials."""
    goodput_mbps: float | None
    """Median over the successful trials."""
    outcomes: dict[str, int]
    record: Outcome | None
    agreement: Agreement
    firm: bool
    """A disagreement whose whole interval is on the other side of 0.5."""
    protocols: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def observed(self) -> str | None:
        rate = self.rate
        return None if rate is None else ("works" if rate >= 0.5 else "fails")


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(
    cell: Cell,
    trials: Iterable[TrialRecord],
    verdicts: Iterable[VerdictRecord],
    outcomes: OutcomeTable,
) -> CellSummary:
    got = [t for t in trials if t.method == cell.method and t.profile == cell.profile]
    ok = [t for t in got if t.ok]
    n, k = len(got), len(ok)
    lo, hi = wilson(k, n)
    record = outcomes.lookup(cell.method, cell.profile)
    protocols: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    for v in verdicts:
        if v.method == cell.method and v.profile == cell.profile:
            protocols.update(v.protocols)
            actions.update(v.actions)
    agreement: Agreement
    firm = False
    if n == 0:
        agreement = "not-measured"
    elif record is None:
        agreement = "no-record"
    else:
        works = k / n >= 0.5
        agreement = "agree" if works == (record.result == "works") else "disagree"
        firm = agreement == "disagree" and (lo > 0.5 if works else hi < 0.5)
    ttfbs = [t.ttfb_s * 1000 for t in ok if t.ttfb_s is not None]
    goodputs = [t.goodput_bps / 1e6 for t in ok if t.goodput_bps is not None]
    return CellSummary(
        cell=cell, trials=n, successes=k, interval=(lo, hi), ttfb_ms=_median(ttfbs),
        goodput_mbps=_median(goodputs), outcomes=dict(Counter(t.outcome for t in got)),
        record=record, agreement=agreement, firm=firm, protocols=dict(protocols),
        actions=dict(actions),
    )  # fmt: skip
