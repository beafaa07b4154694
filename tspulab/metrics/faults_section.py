"""The report's "Faults" section: what failed during the run, when, and what traffic did.

Reads `faults.jsonl` through its contract (`FaultRecord`, tspulab.contracts) and the probe lines
that carry a `fault` (the parts of the lab that were down when they ran). A run without faults
says so in one line.
"""

from __future__ import annotations

import html
import statistics
from typing import Any

from tspulab.contracts import FaultRecord

#: Figures of the records, in the order the table shows them.
FIGURES = (
    ("stopped_after_s", "traffic stopped after"),
    ("flows_after_s", "flows again after"),
    ("bypass_after_s", "blocked target reachable after"),
    ("restart_s", "restore (restart, space freed) took"),
    ("recovered_after_s", "back after the restore"),
    ("blocking_back_after_s", "blocking back after the restore"),
)


def _time(record: FaultRecord) -> str:
    t = record.scenario_t_s
    return "before the timeline" if t is None else f"t+{t:,.1f} s"


def recovery_figures(records: list[FaultRecord]) -> dict[str, dict[str, list[float]]]:
    """fault kind -> figure name -> the values measured (for spreads over many faults)."""
    out: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for name, value in record.measured.items():
            out.setdefault(str(record.fault), {}).setdefault(name, []).append(value)
    return out


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return (
        f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s "
        f"(min / median / max of {len(values)})"
    )


def faults_html(
    records: list[FaultRecord], problems: list[str], probe_lines: list[dict[str, Any]]
) -> str:
    e = html.escape
    affected = [r for r in probe_lines if r.get("fault")]
    if not records and not problems and not affected:
        return '<p class="note">No faults: nothing was injected, and no part of the lab died.</p>'
    rows = "".join(
        f"<tr><td>{e(_time(r))}</td><td>{e(str(r.fault))}</td><td>{e(str(r.phase))}</td>"
        f"<td>{e(r.target or '')}</td>"
        f"<td>{'' if r.after_s is None else f'{r.after_s:.2f} s'}</td>"
        f'<td class="{"bad" if r.phase in ("injected", "failed") else ""}">{e(r.detail)}</td></tr>'
        for r in records
    )
    table = (
        "<table><tr><th>when</th><th>fault</th><th>phase</th><th>target</th>"
        f"<th>after the fault</th><th>what happened</th></tr>{rows}</table>"
        if records
        else ""
    )
    figures = recovery_figures(records)
    spread_rows = "".join(
        f"<tr><td>{e(kind)}</td><td>{e(label)}</td><td>{e(_spread(values[name]))}</td></tr>"
        for kind, values in figures.items()
        for name, label in FIGURES
        if name in values
    )
    spreads = (
        f"<table><tr><th>fault</th><th>figure</th><th>seconds</th></tr>{spread_rows}</table>"
        if spread_rows
        else ""
    )
    by_reason: dict[str, int] = {}
    for line in affected:
        by_reason[str(line["fault"])] = by_reason.get(str(line["fault"]), 0) + 1
    probes = "".join(
        f"<li>{n} probe(s) while: {e(reason)}</li>" for reason, n in sorted(by_reason.items())
    )
    trouble = "".join(f"<li>{e(p)}</li>" for p in problems)
    return (
        '<p class="note">Parts of the lab broken during the run (the scenario\'s '
        "<code>faults:</code>, a signal that ended it, a step that could not be applied), what "
        "traffic did, and when it came back. Traffic times are those of one fetch at a time "
        "(1 s timeout): good to about a second.</p>"
        + table
        + spreads
        + (f"<p>Probes that ran while a part was down:</p><ul>{probes}</ul>" if probes else "")
        + (f'<p class="bad">faults.jsonl problems:</p><ul>{trouble}</ul>' if trouble else "")
    )
