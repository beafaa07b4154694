"""Report sections for the VPN campaigns: which tools work per date, who loses their own tunnels.

Read from results.jsonl (probe and event records, contract in docs/report.md); no file access here.

- `tool_steps`: per ISP, step and method, the services reached through it (a VPN whose tunnel
  works but whose exit filters the registry shows its innocent services reached and the targets
  not: the compliant VPN of docs/tspu-behaviour.md §10.1);
- `own_tunnels`: methods used only to reach innocent services (a company's remote-access VPN, a
  payment network's or a state service's own tunnel) are collateral damage when they fail; per
  ISP and method, the steps they fail in, when the outage starts and ends in scenario time, and
  how long it lasts. Several ISPs with the same tunnels side by side are the counterfactual
  (the same campaign with critical infrastructure whitelisted on one of them).
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tspulab.metrics.detection import section_for_run
from tspulab.metrics.timeline import parse_clock_start
from tspulab.scenario.scalars import format_duration

#: A method works for a service in a step when at least this share of its probes got through
#: (the report's own threshold for "reachable", tspulab.metrics.timeline).
WORKS_SHARE = 0.5


@dataclass
class Step:
    label: str
    start_s: float
    end_s: float | None


@dataclass
class Cell:
    """Probes of one (ISP, step, method, service)."""

    ok: int = 0
    total: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def works(self) -> bool:
        return self.total > 0 and self.ok / self.total >= WORKS_SHARE


def steps_of(records: list[dict[str, Any]]) -> list[Step]:
    """The run's steps from its event records, in order ("start" first)."""
    events = [
        (str(r["label"]), float(r.get("scenario_t_s") or 0.0))
        for r in records
        if r.get("kind") == "event"
    ]
    marks = [("start", 0.0), *sorted(events, key=lambda x: x[1])]
    seen: dict[str, float] = {}
    for label, at in marks:
        seen.setdefault(label, at)
    ordered = sorted(seen.items(), key=lambda x: x[1])
    return [
        Step(label, at, ordered[i + 1][1] if i + 1 < len(ordered) else None)
        for i, (label, at) in enumerate(ordered)
    ]


def method_cells(records: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], Cell]:
    """(isp, step, method, service) -> Cell over the probes made through methods."""
    cells: dict[tuple[str, str, str, str], Cell] = defaultdict(Cell)
    for r in records:
        if r.get("kind") not in ("https", "http") or r.get("method", "direct") == "direct":
            continue
        cell = cells[(str(r.get("isp")), str(r.get("step", "start")), str(r["method"]),
                      str(r.get("service")))]  # fmt: skip
        cell.total += 1
        cell.ok += bool(r.get("ok"))
        outcome = str(r.get("outcome") or "?").split(":")[0]
        cell.outcomes[outcome] = cell.outcomes.get(outcome, 0) + 1
    return dict(cells)


def _roles(records: list[dict[str, Any]]) -> dict[str, str]:
    return {str(r["service"]): str(r.get("role")) for r in records if r.get("service")}


def own_tunnel_methods(records: list[dict[str, Any]]) -> list[str]:
    """Methods whose probes reach only innocent services: their failure is collateral."""
    roles = _roles(records)
    served: dict[str, set[str]] = defaultdict(set)
    for _isp, _step, method, service in method_cells(records):
        served[method].add(roles.get(service, "?"))
    return sorted(m for m, r in served.items() if r == {"innocent"})


# --- the per-date tool table ----------------------------------------------------------------


def _mark(cell: Cell | None) -> str:
    if cell is None:
        return '<span class="note">–</span>'
    if cell.works:
        return f'<span class="good">✓</span> <span class="note">{cell.ok}/{cell.total}</span>'
    why = ", ".join(sorted(cell.outcomes))
    return (
        f'<span class="bad">✗</span> <span class="note">{cell.ok}/{cell.total} '
        f"{html.escape(why)}</span>"
    )


def tool_steps_html(records: list[dict[str, Any]]) -> str:
    """Per ISP: a row per step, a column per method, each cell the services reached through it."""
    cells = method_cells(records)
    if not cells:
        return ""
    measured = {k[1] for k in cells}
    steps = [s for s in steps_of(records) if s.label in measured]
    isps = sorted({k[0] for k in cells})
    methods = sorted({k[2] for k in cells})
    services = {m: sorted({k[3] for k in cells if k[2] == m}) for m in methods}
    roles = _roles(records)
    out = [
        "<h2>Tools per date</h2>",
        '<p class="note">Each cell: the services reached through the method in that step (✓ at '
        f"least {WORKS_SHARE:.0%} of its probes got through), probes ok/made, and why the others "
        "failed (client-failed: the tool's handshake never completed; timeout: the tunnel or "
        "proxy came up but the fetch through it did not). Targets are the registry's; a method "
        "that reaches an innocent service but not a target filters at its exit. Methods reaching "
        "only innocent services are subscribers' or companies' own tunnels: their failures are "
        "collateral damage (next section).</p>",
    ]
    for isp in isps:
        head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
        rows = [f"<tr><th>step</th>{head}</tr>"]
        for step in steps:
            tds = []
            for m in methods:
                parts = []
                for svc in services[m]:
                    cell = cells.get((isp, step.label, m, svc))
                    if cell is None:
                        continue
                    tag = "<b>" if roles.get(svc) == "target" else ""
                    end = "</b>" if tag else ""
                    parts.append(f"{tag}{html.escape(svc)}{end} {_mark(cell)}")
                tds.append("<td>" + ("<br>".join(parts) or '<span class="note">not used</span>')
                           + "</td>")  # fmt: skip
            rows.append(f"<tr><td><b>{html.escape(step.label)}</b></td>{''.join(tds)}</tr>")
        table = f"<div class='scroll'><table class='num'>{''.join(rows)}</table></div>"
        out.append(f"<h3>{html.escape(isp)}</h3>{table}")
    return "\n".join(out)


# --- own tunnels: collateral damage, outages, the counterfactual ----------------------------


@dataclass
class Outage:
    """Where and how long one ISP's subscribers lost an own tunnel (scenario time)."""

    isp: str
    method: str
    failing_steps: list[str]
    windows: list[tuple[float, float | None]]
    """Each outage: from the start of its first failing step to the start of the next step in
    which the tunnel worked again (None: still failing when the run ended)."""
    probes_failed: int
    probes: int

    @property
    def duration_s(self) -> float | None:
        """Total outage time; None when there was none or the last one never ended."""
        if not self.windows or any(end is None for _, end in self.windows):
            return None
        return sum(end - start for start, end in self.windows if end is not None)


def outages(records: list[dict[str, Any]]) -> list[Outage]:
    """Per ISP and own-tunnel method: the steps in which it failed (fewer than half of its probes
    got through) and each outage window, a run of failing steps until the tunnel works again."""
    cells = method_cells(records)
    steps = steps_of(records)
    out = []
    for method in own_tunnel_methods(records):
        for isp in sorted({k[0] for k in cells if k[2] == method}):
            per_step = []
            failed = total = 0
            for step in steps:
                merged = Cell()
                for (i, s, m, _), c in cells.items():
                    if (i, s, m) == (isp, step.label, method):
                        merged.ok += c.ok
                        merged.total += c.total
                if merged.total:
                    per_step.append((step, merged.works))
                    failed += merged.total - merged.ok
                    total += merged.total
            windows: list[tuple[float, float | None]] = []
            start: float | None = None
            for step, works in per_step:
                if not works and start is None:
                    start = step.start_s
                elif works and start is not None:
                    windows.append((start, step.start_s))
                    start = None
            if start is not None:
                windows.append((start, None))
            failing = [s.label for s, works in per_step if not works]
            out.append(Outage(isp, method, failing, windows, failed, total))
    return out


def own_tunnels_html(records: list[dict[str, Any]], clock_iso: Any = None) -> str:
    """The collateral damage to own tunnels: a table of outages per ISP (side by side when the
    same tunnel runs through several ISPs, the counterfactual) and the per-step shares."""
    found = outages(records)
    if not found:
        return ""
    cells = method_cells(records)
    measured = {k[1] for k in cells}
    steps = [s for s in steps_of(records) if s.label in measured]
    isps = sorted({o.isp for o in found})
    methods = sorted({o.method for o in found})

    def when(t: float | None) -> str:
        if t is None:
            return "–"
        at = clock_iso(t) if clock_iso is not None else None
        return html.escape(at or f"t+{format_duration(t)}")

    rows = [
        "<tr><th>own tunnel</th><th>ISP</th><th>failed probes</th><th>failing steps</th>"
        "<th>outages (from - until)</th><th>lasting in all</th></tr>"
    ]
    for o in found:
        spans = "<br>".join(
            f"{when(a)} - {when(b) if b is not None else 'the end of the run'}"
            for a, b in o.windows
        )
        lasting = (
            format_duration(o.duration_s) if o.duration_s is not None
            else ("to the end of the run" if o.windows else "no outage")
        )  # fmt: skip
        cls = "bad" if o.failing_steps else "good"
        rows.append(
            f"<tr><td>{html.escape(o.method)}</td><td>{html.escape(o.isp)}</td>"
            f'<td class="{cls}">{o.probes_failed}/{o.probes}</td>'
            f"<td>{html.escape(', '.join(o.failing_steps) or 'none')}</td>"
            f"<td>{spans or '–'}</td><td>{lasting}</td></tr>"
        )
    head = "".join(f"<th>{html.escape(m)}<br>{html.escape(i)}</th>" for m in methods for i in isps)
    grid = [f"<tr><th>step</th>{head}</tr>"]
    for step in steps:
        tds = []
        for m in methods:
            for i in isps:
                merged = Cell()
                for (ci, cs, cm, _), c in cells.items():
                    if (ci, cs, cm) == (i, step.label, m):
                        merged.ok += c.ok
                        merged.total += c.total
                tds.append(f"<td>{_mark(merged) if merged.total else '–'}</td>")
        grid.append(f"<tr><td><b>{html.escape(step.label)}</b></td>{''.join(tds)}</tr>")
    return (
        "<h2>Own tunnels: collateral damage</h2>"
        '<p class="note">Tunnels used only to reach innocent services (a company\'s remote-access '
        "VPN, a payment network's or a state service's own tunnel). An outage runs from the start "
        "of the first step in which fewer than half of the tunnel's probes got through to the "
        "start of the next step in which it worked again; its length is therefore resolved to the "
        "scenario's steps, which the scenario file chooses. The same tunnel through several ISPs "
        "side by side is the counterfactual when one ISP's TSPU whitelists it.</p>"
        f"<div class='scroll'><table class='num'>{''.join(rows)}</table></div>"
        f"<div class='scroll'><table class='num'>{''.join(grid)}</table></div>"
    )


def vpn_sections(
    meta: dict[str, Any], records: list[dict[str, Any]], run_dir: Path | None = None
) -> str:
    """The VPN report sections of a run: tools per date and own tunnels (with circumvention
    methods), and who was flagged as a VPN user (with detections; tspulab.metrics.detection)."""
    start = parse_clock_start(meta.get("clock_start"))

    def clock_iso(t: float) -> str | None:
        if start is None:
            return None
        return (start + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M")

    detected = section_for_run(run_dir, meta, records) if run_dir is not None else ""
    return tool_steps_html(records) + own_tunnels_html(records, clock_iso) + detected


def insert_sections(page: str, sections: str) -> str:
    """The report page with `sections` before its Timeline section (unchanged when empty)."""
    if not sections:
        return page
    marker = "<h2>Timeline</h2>"
    if marker in page:
        return page.replace(marker, sections + marker, 1)
    return page.replace("</body>", sections + "</body>", 1)
