"""The matrix as a page, as JUnit and as a terminal table, from its results records.

`report.html` is one self-contained page (no script, no outside file): methods down, profiles
across; each cell shows successes of trials, the rate with its Wilson interval, median time to
first byte and goodput of the successful trials, the rule the TSPU applied, and the outcome §6
records for it; a cell whose majority disagrees with its record has a red frame and a mark,
and every disagreement is listed under the table with the record's source and reasoning.
`junit.xml` has one test case per cell: a failure where the cell disagrees with its record, an
error where it was not measured.
"""

from __future__ import annotations

import html
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tspulab.matrix.outcomes import OutcomeTable
from tspulab.matrix.plan import Cell, all_cells
from tspulab.matrix.records import (
    Footer,
    Header,
    LabRecord,
    MatrixSpec,
    Record,
    TrialRecord,
    VerdictRecord,
)
from tspulab.matrix.stats import CellSummary, summarise


@dataclass(frozen=True)
class MatrixReport:
    spec: MatrixSpec
    shards: str
    cells: tuple[CellSummary, ...]
    """The cells of the shards given, in matrix order (a planned cell whose lab failed is
    `not-measured`)."""
    labs: tuple[LabRecord, ...]
    wall_s: float | None
    started: float
    host: str

    @property
    def disagreements(self) -> list[CellSummary]:
        return [c for c in self.cells if c.agreement == "disagree"]

    @property
    def unmeasured(self) -> list[CellSummary]:
        return [c for c in self.cells if c.agreement == "not-measured"]

    @property
    def absent(self) -> int:
        """Cells of the matrix in none of the shards given."""
        return len(self.spec.methods) * len(self.spec.profiles) - len(self.cells)

    def cell(self, method: str, profile: str) -> CellSummary | None:
        return next((c for c in self.cells if c.cell == Cell(method, profile)), None)


def build_report(records: Sequence[Record], outcomes: OutcomeTable) -> MatrixReport:
    header = records[0]
    assert isinstance(header, Header)
    trials = [r for r in records if isinstance(r, TrialRecord)]
    verdicts = [r for r in records if isinstance(r, VerdictRecord)]
    labs = tuple(r for r in records if isinstance(r, LabRecord))
    footer = next((r for r in records if isinstance(r, Footer)), None)
    spec = header.spec
    planned = set(header.cells)
    cells = tuple(
        summarise(c, trials, verdicts, outcomes)
        for c in all_cells(spec.methods, spec.profiles)
        if c.key() in planned
    )
    return MatrixReport(
        spec=spec, shards=header.shard, cells=cells, labs=labs,
        wall_s=footer.wall_s if footer else None, started=header.started, host=header.host,
    )  # fmt: skip


# --- text -------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def cell_text(c: CellSummary | None) -> str:
    if c is None:
        return "·"
    if not c.trials:
        return "—"
    mark = "!" if c.agreement == "disagree" else ""
    lo, hi = c.interval
    return f"{c.successes}/{c.trials} [{_pct(lo)}-{_pct(hi)}]{mark}"


def format_table(report: MatrixReport) -> str:
    """Methods × profiles: successes/trials [Wilson 95 % in %], `!` where §6 disagrees, `·`
    for a cell of another shard, `—` for one not measured."""
    spec = report.spec
    width = max(len(m) for m in spec.methods) + 1
    cols = [max(len(p), 14) for p in spec.profiles]
    lines = [" " * width + " ".join(p.ljust(w) for p, w in zip(spec.profiles, cols, strict=True))]
    for m in spec.methods:
        row = [
            cell_text(report.cell(m, p)).ljust(w) for p, w in zip(spec.profiles, cols, strict=True)
        ]
        lines.append(m.ljust(width) + " ".join(row))
    return "\n".join(lines)


def format_markdown(report: MatrixReport) -> str:
    """The matrix as a Markdown table (for notes and docs): successes/trials [Wilson 95 %],
    **≠** where the cell disagrees with its §6 record."""
    spec = report.spec
    lines = [
        "| method | " + " | ".join(spec.profiles) + " |",
        "|---|" + "---|" * len(spec.profiles),
    ]
    for m in spec.methods:
        cells = []
        for p in spec.profiles:
            c = report.cell(m, p)
            text = cell_text(c).rstrip("!")
            if c is not None and c.agreement == "disagree":
                text += " **≠**"
            cells.append(text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_disagreements(report: MatrixReport) -> str:
    lines = []
    for c in report.disagreements:
        assert c.record is not None
        lo, hi = c.interval
        lines.append(
            f"{c.cell.method} @ {c.cell.profile}: lab {c.observed} ({c.successes}/{c.trials}, "
            f"95 % {_pct(lo)}-{_pct(hi)} %{', firm' if c.firm else ''}); §6 {c.record.result} "
            f"({c.record.technique}; {c.record.when}; {c.record.source}) [{c.record.id}]"
            + (f"; TSPU: {_actions(c)}" if c.actions else "")
        )
    return "\n".join(lines)


def _actions(c: CellSummary) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in sorted(c.actions.items()))


# --- JUnit ------------------------------------------------------------------------------------


def write_junit(report: MatrixReport, path: Path) -> Path:
    cases = report.cells
    failures = sum(c.agreement == "disagree" for c in cases)
    errors = sum(c.agreement == "not-measured" for c in cases)
    root = ET.Element(
        "testsuites", tests=str(len(cases)), failures=str(failures), errors=str(errors)
    )
    suite = ET.SubElement(
        root, "testsuite", name="tspulab.matrix", tests=str(len(cases)), failures=str(failures),
        errors=str(errors), time=f"{report.wall_s or 0:.1f}",
    )  # fmt: skip
    for c in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"tspulab.matrix.{c.cell.profile}", name=c.cell.method
        )
        text = _junit_text(c)
        if c.agreement == "disagree":
            assert c.record is not None
            ET.SubElement(
                case, "failure", type="DisagreesWithRecord",
                message=f"lab {c.observed}, §6 {c.record.result} ({c.record.source})",
            ).text = text  # fmt: skip
        elif c.agreement == "not-measured":
            ET.SubElement(case, "error", type="NotMeasured", message="no trial ran").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    return path


def _junit_text(c: CellSummary) -> str:
    parts = [f"{c.successes}/{c.trials} trials", f"outcomes {c.outcomes}"]
    if c.trials:
        lo, hi = c.interval
        parts.append(f"95 % interval {lo:.2f}-{hi:.2f}")
    if c.record:
        parts.append(f"§6 {c.record.result}: {c.record.technique} ({c.record.source})")
    if c.actions:
        parts.append(f"TSPU {_actions(c)}")
    return "; ".join(parts)


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: 4px 6px; vertical-align: top; }
th { background: #eee; }
td.cell { min-width: 9em; font-size: 12px; }
td.works { background: #d9f2d0; } td.fails { background: #f6d2cf; } td.none { background: #eee; }
td.disagree { outline: 3px solid #d40000; outline-offset: -3px; }
.big { font-size: 15px; font-weight: 600; }
.rec { color: #555; } .mark { color: #d40000; font-weight: 700; }
.rec.works::before { content: "§6 works "; color: #1b6e12; }
.rec.fails::before { content: "§6 fails "; color: #9b1c12; }
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _cell_html(c: CellSummary | None) -> str:
    if c is None:
        return '<td class="cell none">not in these shards</td>'
    if not c.trials:
        return '<td class="cell none">not measured</td>'
    classes = ["cell", c.observed or "none"]
    if c.agreement == "disagree":
        classes.append("disagree")
    lo, hi = c.interval
    rows = [
        f'<span class="big">{c.successes}/{c.trials}</span> '
        f"{_pct(c.successes / c.trials)} % [{_pct(lo)}–{_pct(hi)}]"
    ]
    if c.ttfb_ms is not None or c.goodput_mbps is not None:
        ttfb = f"{c.ttfb_ms:.0f} ms" if c.ttfb_ms is not None else "–"
        goodput = f"{c.goodput_mbps:.1f} Mbit/s" if c.goodput_mbps is not None else "–"
        rows.append(f"TTFB {ttfb} · {goodput}")
    failed = {k: v for k, v in c.outcomes.items() if k != "ok"}
    if failed:
        rows.append("; ".join(f"{_e(k[:40])} ×{v}" for k, v in failed.items()))
    if c.actions:
        rows.append(f"TSPU: {_e(_actions(c))}")
    if c.record:
        mark = ' <span class="mark">≠</span>' if c.agreement == "disagree" else ""
        r = c.record
        rows.append(
            f'<span class="rec {r.result}" title="{_e(r.technique)}, {_e(r.when)}. '
            f'{_e(r.why)}">{_e(r.source)}</span>{mark}'
        )
    return f'<td class="{" ".join(classes)}">' + "<br>".join(rows) + "</td>"


def _disagreement_row(c: CellSummary) -> str:
    r = c.record
    assert r is not None
    lo, hi = c.interval
    return (
        f"<tr><td>{_e(c.cell.method)}</td><td>{_e(c.cell.profile)}</td>"
        f"<td>{c.successes}/{c.trials} ({_pct(lo)}–{_pct(hi)} %){' firm' if c.firm else ''}</td>"
        f"<td>{_e(r.result)}</td><td>{_e(r.technique)}; {_e(r.when)}</td>"
        f"<td>{_e(r.source)} ({_e(r.section)})</td><td>{_e(_actions(c))}</td>"
        f"<td>{_e(r.why)}</td></tr>"
    )


def render_html(report: MatrixReport, outcomes: OutcomeTable) -> str:
    spec = report.spec
    head = "".join(f"<th>{_e(p)}</th>" for p in spec.profiles)
    body = "".join(
        f"<tr><th>{_e(m)}</th>"
        + "".join(_cell_html(report.cell(m, p)) for p in spec.profiles)
        + "</tr>"
        for m in spec.methods
    )
    measured = [c for c in report.cells if c.trials]
    with_record = [c for c in measured if c.record]
    dis = report.disagreements
    dis_rows = "".join(_disagreement_row(c) for c in dis)
    dis_table = (
        '<table id="disagreements"><tr><th>method</th><th>profile</th><th>lab</th><th>§6</th>'
        "<th>technique; when</th><th>source</th><th>TSPU</th><th>why the record applies</th>"
        f"</tr>{dis_rows}</table>"
        if dis
        else "<p>None.</p>"
    )
    labs = "".join(
        f"<tr><td>{_e(lab.lab)}</td><td>{_e(', '.join(lab.methods))}</td>"
        f"<td>{len(lab.profiles)}</td>"
        f"<td>{'' if lab.bringup_s is None else f'{lab.bringup_s:.1f} s'}</td>"
        f"<td>{lab.wall_s:.0f} s</td><td>{_e(lab.error or '')}</td></tr>"
        for lab in report.labs
    )
    unmeasured = report.unmeasured
    not_measured = (
        f"<h2>Not measured</h2><p>{_e(', '.join(c.cell.key() for c in unmeasured))}</p>"
        if unmeasured
        else ""
    )
    wall = f"{report.wall_s:.0f} s" if report.wall_s is not None else "unfinished"
    timeout = f"{spec.timeout_s:g}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.started))
    absent = (
        f"<p>{report.absent} cell(s) of the matrix are in none of these shards.</p>"
        if report.absent
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tspulab matrix</title>
<style>{_CSS}</style></head><body>
<h1>Circumvention tools × TSPU profiles</h1>
<p id="summary">{len(measured)} of {len(report.cells)} cells measured, {spec.trials} trial(s) each
(a fetch of {spec.transfer_bytes} bytes through the tool's own client, timeout {timeout} s);
<b>{len(dis)} disagreement(s)</b> with the outcomes recorded in docs/tspu-behaviour.md §6
({len(with_record)} cells have a record). Shards {_e(report.shards)} on {_e(report.host)},
started {when}, wall time {wall}.</p>
<p>Each cell: successes/trials, rate and its 95 % Wilson interval; median time to first byte and
goodput of the successful trials; failed trials' outcomes; the TSPU's rules that acted on the
cell's flows; the §6 record's result and source (hover for the technique, when, and why it
applies to the cell). Green: works (rate ≥ 50 %), red: fails;
a red frame and ≠: the lab disagrees with the record.</p>
<table id="matrix"><tr><th>method \\ profile</th>{head}</tr>{body}</table>
<h2>Disagreements with §6</h2>
{dis_table}
<p>A disagreement is firm when the whole interval is on the other side of 50 %.</p>
{absent}
{not_measured}
<h2>Labs</h2>
<table id="labs"><tr><th>lab</th><th>methods</th><th>profiles</th><th>bring-up</th><th>wall</th>
<th>error</th></tr>{labs}</table>
<p>Records from {_e(outcomes.file or "(none)")}.</p>
</body></html>
"""


def write_reports(records: Sequence[Record], out_dir: Path, outcomes: OutcomeTable) -> MatrixReport:
    report = build_report(records, outcomes)
    (out_dir / "report.html").write_text(render_html(report, outcomes), encoding="utf-8")
    (out_dir / "report.md").write_text(format_markdown(report) + "\n", encoding="utf-8")
    write_junit(report, out_dir / "junit.xml")
    return report
