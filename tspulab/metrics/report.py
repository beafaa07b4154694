"""The run's report: a terminal summary (rich) and a self-contained HTML page.

Two pages: `write_report` for a single-step run (figures of one Summary), and
`write_campaign_report` for a campaign, which reads the run directory itself (run.json,
results.jsonl, summary.json if present) and shows the metrics over scenario time with PNG
figures embedded as base64 (tspulab.metrics.plots), the expectation verdicts (also written to
junit.xml) and the environment notes.
"""

from __future__ import annotations

import contextlib
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tspulab.metrics.campaign_page import render_campaign_html
from tspulab.metrics.expect import ExpectationResult, evaluate, write_junit
from tspulab.metrics.results import read_results
from tspulab.metrics.summary import Summary
from tspulab.metrics.timeline import Timeline, build_timeline, parse_clock_start, services_from_meta


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def print_summary(summary: Summary, run_dir: Path, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"tspulab: {summary.scenario}")
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
        table.add_row(
            s.name, s.role, s.cloud, s.address, "yes" if s.address_in_registry else "no",
            f"{s.ok}/{s.probes} {status}", goodput,
            ", ".join(f"{k}×{v}" for k, v in sorted(s.outcomes.items())),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"intended blocking {_pct(summary.intended_blocking)} "
        f"(broken or degraded {_pct(summary.targets_affected)}) · "
        f"collateral damage {_pct(summary.collateral_damage)} "
        f"(weighted by users {_pct(summary.collateral_damage_weighted)}; broken or degraded "
        f"{_pct(summary.collateral_degraded)}) · "
        f"blocked addresses {summary.blocked_addresses:,} in {summary.registry_prefixes} prefixes "
        f"for {summary.target_addresses} target address(es)"
    )
    console.print(f"report: {run_dir / 'report.html'}  ·  results: {run_dir / 'results.jsonl'}")


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def write_report(run_dir: Path, summary: Summary, meta: dict[str, Any]) -> Path:
    e = html.escape
    services = [
        _row(
            [
                "service",
                "role",
                "cloud",
                "address",
                "in registry",
                "probes ok",
                "verdict",
                "goodput",
                "outcomes",
            ],
            "th",
        )
    ]
    for s in summary.services:
        verdict = (
            '<b class="bad">broken</b>'
            if s.broken
            else '<b class="warn">degraded</b>'
            if s.degraded
            else '<b class="good">reachable</b>'
        )
        goodput = "" if s.goodput_kbps is None else f"{s.goodput_kbps:,.0f} kbit/s"
        services.append(
            _row([
                e(s.name), e(s.role), e(s.cloud), e(s.address),
                "yes" if s.address_in_registry else "no",
                f"{s.ok}/{s.probes}", verdict, goodput,
                e(", ".join(f"{k}×{v}" for k, v in sorted(s.outcomes.items()))),
            ])
        )  # fmt: skip
    flows = [_row(["table", "priority", "match", "actions", "packets", "bytes"], "th")]
    for f in summary.extra.get("tspu_flows", []):
        flows.append(
            _row([str(f["table"]), str(f["priority"]), e(f["match"]), e(f["actions"]),
                  f"{f['n_packets']:,}", f"{f['n_bytes']:,}"])
        )  # fmt: skip
    bulk = summary.extra.get("bulk") or {}
    env = summary.extra.get("environment", {})
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tspulab report: {e(summary.scenario)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; font-size: 90%; }}
th {{ background: #f0f0f0; }}
.good {{ color: #1a7f37; }} .bad {{ color: #c62828; }} .warn {{ color: #b26a00; }}
.figures td:first-child {{ font-weight: bold; }}
.note {{ color: #666; font-size: 90%; }}
</style></head><body>
<h1>tspulab report: {e(summary.scenario)}</h1>
<p class="note">scenario file {e(str(meta.get("scenario", "")))} · run directory {e(str(run_dir))}</p>
<h2>Figures</h2>
<table class="figures">
<tr><td>Intended blocking (targets unreachable)</td><td>{_pct(summary.intended_blocking)}</td></tr>
<tr><td>Targets broken or degraded (throttled)</td><td>{_pct(summary.targets_affected)}</td></tr>
<tr><td>Collateral damage (innocent services broken)</td><td>{_pct(summary.collateral_damage)}</td></tr>
<tr><td>Collateral damage weighted by users</td><td>{_pct(summary.collateral_damage_weighted)}</td></tr>
<tr><td>Innocent services broken or degraded (throttled)</td><td>{_pct(summary.collateral_degraded)}</td></tr>
<tr><td>Addresses blocked by the registry</td><td>{summary.blocked_addresses:,} in {summary.registry_prefixes} aggregated prefixes</td></tr>
<tr><td>Addresses the targets use</td><td>{summary.target_addresses}</td></tr>
<tr><td>Over-blocking (blocked / target addresses)</td><td>{summary.overblocking_ratio or 0:,.0f}×</td></tr>
</table>
<h2>Services</h2>
<table>{"".join(services)}</table>
<h2>The TSPU switch</h2>
<p>Flow counters after the run. Allowed traffic is forwarded by the switch; the controller log
counted {summary.extra.get("controller_events", {}).get("tspu-unexpected-packet-in", 0)} packet-ins
from the TSPU switch.
Bulk transfer: {e(str(bulk.get("bytes", "-")))} bytes from {e(str(bulk.get("service", "-")))} at
{e(str(bulk.get("mbit_s", "-")))} Mbit/s.</p>
<table>{"".join(flows)}</table>
<h2>Environment</h2>
<p class="note">Datapath: {e(str(env.get("datapath", "?")))}. netem (emulated delay and loss):
{"available" if env.get("netem") else "not available on this kernel: links have no emulated delay or loss"}.
Lab bring-up: {e(str(summary.extra.get("lab_timings_s", {})))}.</p>
</body></html>
"""
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


# --- campaign report: metrics over scenario time -------------------------------------------------


@dataclass
class CampaignReport:
    """What `write_campaign_report` made: the page, the timeline and the expectation verdicts."""

    path: Path
    timeline: Timeline
    expectations: list[ExpectationResult]
    junit: Path | None


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """run.json (empty when missing or unreadable) and the results.jsonl records."""
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        meta = {}
    return meta if isinstance(meta, dict) else {}, read_results(run_dir / "results.jsonl")


def campaign_timeline(meta: dict[str, Any], records: list[dict[str, Any]]) -> Timeline:
    probes = meta.get("probes")
    clock = meta.get("clock")
    probes = probes if isinstance(probes, dict) else {}
    clock = clock if isinstance(clock, dict) else {}
    return build_timeline(
        records,
        services_from_meta(meta),
        degraded_below_kbps=float(probes.get("degraded_below_kbps") or 1000.0),
        clock_start=parse_clock_start(clock.get("start")),
    )


def write_campaign_report(
    run_dir: Path, expect: list[dict[str, Any]] | None = None
) -> CampaignReport:
    """Read the run directory, evaluate `expect` (default: run.json's "expect", if any), write
    junit.xml (when there are expectations) and report.html; safe to call on a partial run."""
    meta, records = load_run(run_dir)
    timeline = campaign_timeline(meta, records)
    items = expect if expect is not None else list(meta.get("expect") or [])
    results = evaluate(items, timeline)
    junit = (
        write_junit(results, run_dir / "junit.xml", str(meta.get("name") or "tspulab"))
        if items
        else None
    )
    summary_extra: dict[str, Any] = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        summary_extra = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    page = render_campaign_html(run_dir, meta, timeline, results, summary_extra)
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return CampaignReport(path, timeline, results, junit)
