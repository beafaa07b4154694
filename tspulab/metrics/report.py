"""The run's report: a terminal summary (rich) and one self-contained HTML page for every run.

`write_report` reads the run directory itself (run.json through its contract, results.jsonl,
summary.json if present) and shows the metrics over scenario time with PNG figures embedded as
base64 (tspulab.metrics.plots), the whole run's services, the expectation verdicts (also written
to junit.xml) and the environment notes. A single-ISP run without a timeline is a campaign of one
ISP and one step: the same page.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tspulab.contracts import (
    FAULTS_FILE,
    RESULTS_FILE,
    RUN_FILE,
    ContractError,
    FaultRecord,
    RunMeta,
    read_faults,
)
from tspulab.metrics.boxes import box_lines
from tspulab.metrics.expect import ExpectationResult, evaluate, write_junit
from tspulab.metrics.faults_section import faults_html
from tspulab.metrics.results import read_results
from tspulab.metrics.run_page import render_run_html
from tspulab.metrics.summary import Summary, kinds_text
from tspulab.metrics.timeline import (
    Timeline,
    build_timeline,
    parse_clock_start,
    services_from_meta,
    weights_from_meta,
)
from tspulab.metrics.vpn import insert_sections, vpn_sections


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def print_summary(
    summary: Summary,
    run_dir: Path,
    console: Console | None = None,
    timeline: Timeline | None = None,
) -> None:
    """The whole run's services (every direct probe, pooled), then, given the timeline, where
    each ISP ended per subscriber (the report's headline)."""
    console = console or Console()
    table = Table(title=f"tspulab: {summary.scenario}, every direct probe of the whole run")
    for col in ("service", "role", "cloud", "address", "in registry", "reachable", "goodput",
                "outcomes"):  # fmt: skip
        table.add_column(col)
    for s in summary.services:
        status = (
            "[red]broken[/red]"
            if s.broken
            else "[yellow]degraded[/yellow]"
            if s.degraded
            else "[green]ok[/green]"
        )
        goodput = "" if s.goodput_kbps is None else f"{s.goodput_kbps:,.0f} kbit/s"
        per_kind = kinds_text(s.kinds, "\n")  # several kinds: each kind's count on a line
        table.add_row(
            s.name, s.role, s.cloud, s.address, "yes" if s.address_in_registry else "no",
            f"{s.ok}/{s.probes} {status}" + (f"\n{per_kind}" if per_kind else ""), goodput,
            ", ".join(f"{k}×{v}" for k, v in sorted(s.outcomes.items())),
        )  # fmt: skip
    console.print(table)
    console.print(
        "whole run, probes of every ISP pooled (binary view): "
        f"intended blocking {_pct(summary.intended_blocking)} "
        f"(broken or degraded {_pct(summary.targets_affected)}) · "
        f"collateral damage {_pct(summary.collateral_damage)} "
        f"(weighted by users {_pct(summary.collateral_damage_weighted)}; broken or degraded "
        f"{_pct(summary.collateral_degraded)}) · "
        f"blocked addresses {summary.blocked_addresses:,} in {summary.registry_prefixes} prefixes "
        f"for {summary.target_addresses} target address(es)"
    )
    for line in _ended(timeline) if timeline is not None else []:
        console.print(line)
    for line in box_lines(summary.extra.get("by_box")):  # the TSPU or the ISP's old filter
        console.print(line)
    console.print(f"report: {run_dir / 'report.html'}  ·  results: {run_dir / 'results.jsonl'}")


def _ended(tl: Timeline) -> list[str]:
    """Per ISP, its last measured step: the per-subscriber figures, the binary view beside."""
    out = []
    for isp in tl.isps:
        last = next(
            (p for b in reversed(tl.steps) if (p := tl.point(b, isp)) and p.summary.services), None
        )
        if last is None:
            continue
        sub, s = last.subscribers, last.summary
        pops = "".join(
            f"; {name} {fig.broken:.3g} of {fig.n} broken "
            f"(95 % {100 * fig.low:.0f}-{100 * fig.high:.0f} %)"
            for name in tl.populations()
            if (fig := sub.population(name)) is not None
        )
        out.append(
            f"{isp} at '{last.bucket.key}': targets blocked for {_pct(sub.intended_blocking)} of "
            f"subscribers, collateral {_pct(sub.collateral_damage)} per subscriber, "
            f"{_pct(sub.subscribers_hit)} hit{pops} (binary: {_pct(s.intended_blocking)}, "
            f"{_pct(s.collateral_damage)})"
        )
    return out


# --- the report page: metrics over scenario time ------------------------------------------------


@dataclass
class RunReport:
    """What `write_report` made: the page, the timeline and the expectation verdicts."""

    path: Path
    timeline: Timeline
    expectations: list[ExpectationResult]
    junit: Path | None
    faults: list[FaultRecord] = field(default_factory=list)
    """faults.jsonl: what failed during the run, and when (the page's "Faults" section)."""


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """run.json (validated by its contract; empty when missing or invalid, with the reason), and
    the results.jsonl records: a report of a broken run still shows what was measured."""
    try:
        meta: dict[str, Any] = RunMeta.read(run_dir / RUN_FILE).model_dump(mode="json")
        problem = None
    except ContractError as err:
        meta, problem = {}, str(err)
    return meta, read_results(run_dir / RESULTS_FILE), problem


def run_timeline(meta: dict[str, Any], records: list[dict[str, Any]]) -> Timeline:
    probes = meta.get("probes") or {}
    return build_timeline(
        records,
        services_from_meta(meta),
        degraded_below_kbps=float(probes.get("degraded_below_kbps") or 1000.0),
        clock_start=parse_clock_start(meta.get("clock_start")),
        weights=weights_from_meta(meta),
    )


def write_report(run_dir: Path, expect: list[dict[str, Any]] | None = None) -> RunReport:
    """Read the run directory, evaluate `expect` (default: run.json's "expect", if any), write
    junit.xml (when there are expectations) and report.html; safe to call on a partial run."""
    meta, records, problem = load_run(run_dir)
    timeline = run_timeline(meta, records)
    items = expect if expect is not None else list(meta.get("expect") or [])
    results = evaluate(items, timeline)
    junit = (
        write_junit(results, run_dir / "junit.xml", str(meta.get("name") or "tspulab"))
        if items
        else None
    )
    summary: dict[str, Any] = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    if problem:
        summary["contract_problem"] = problem
    faults, fault_problems = read_faults(run_dir / FAULTS_FILE)
    page = render_run_html(
        run_dir, meta, timeline, results, summary,
        faults=faults_html(faults, fault_problems, records),
    )  # fmt: skip
    page = insert_sections(page, vpn_sections(meta, records, run_dir))
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return RunReport(path, timeline, results, junit, faults)
