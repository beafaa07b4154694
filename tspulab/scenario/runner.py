"""Run a scenario: bring the lab up, start real servers, probe from subscribers, report, tear down.

Everything the run makes is recorded in `<run dir>/made.jsonl` as it is made; teardown runs at
normal exit, on Ctrl-C and on SIGTERM, and `tspulab clean` replays the record after a SIGKILL.
Probe results are written to `<run dir>/results.jsonl` as they are measured.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tspulab.lab.ofctl import parse_dump_flows, parse_dump_ports
from tspulab.lab.sandbox import run_in_sandbox
from tspulab.metrics.report import write_report
from tspulab.metrics.results import read_results
from tspulab.metrics.summary import ServiceSpec, Summary, summarise
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario
from tspulab.scenario.schema import ScenarioError, load_scenario


@dataclass
class RunOutcome:
    run_dir: Path
    summary: Summary
    leftovers: list[str] = field(default_factory=list)


def run_scenario(
    scenario: Scenario,
    runs_dir: Path,
    *,
    tspu: bool = True,
    bulk_transfer: bool = True,
    capture: bool = False,
    log: Any = print,
) -> RunOutcome:
    """Run one scenario end to end. `tspu=False` runs the TSPU position as a learning switch."""
    live = LiveLab(scenario, runs_dir, tspu=tspu, capture=capture,
                   log=log)  # fmt: skip
    extra: dict[str, Any] = {}
    with live:
        _probe_rounds(live)
        if bulk_transfer:
            extra["bulk"] = _bulk_transfer(live)
        lab = live.lab
        extra["tspu_flows"] = [
            f.__dict__ for f in parse_dump_flows(lab.dump_flows(live.tspu_switch))
        ]
        extra["tspu_ports"] = parse_dump_ports(lab.dump_ports(live.tspu_switch))
        if tspu:
            extra["controller_stats"] = live.controller_stats()
    run_dir = live.run_dir
    extra["controller_events"] = _controller_event_counts(run_dir / "controller-events.jsonl")
    summary = summarise_run(live, extra)
    write_report(run_dir, summary, live.meta)
    return RunOutcome(run_dir, summary, live.leftovers)


def summarise_run(live: LiveLab, extra: dict[str, Any]) -> Summary:
    scenario, registry = live.scenario, live.registry
    in_registry = {
        str(s.address) for s in scenario.services if registry.contains_address(str(s.address))
    }
    services = [
        ServiceSpec(s.name, s.role, s.users, str(s.address), s.cloud) for s in scenario.services
    ]
    summary = summarise(
        scenario.name,
        services,
        read_results(live.run_dir / "results.jsonl"),
        blocked_addresses=registry.address_count(4) + registry.address_count(6),
        registry_prefixes=len(live.prefixes),
        in_registry=in_registry,
        degraded_below_kbps=scenario.probes.degraded_below_kbps,
    )
    summary.extra.update(extra)
    summary.extra["lab_timings_s"] = {k: round(v, 3) for k, v in live.lab.timings.items()}
    summary.extra["environment"] = {"netem": live.meta["netem"], "datapath": live.meta["datapath"]}
    (live.run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=1))
    return summary


def _probe_rounds(live: LiveLab) -> None:
    scenario, log = live.scenario, live.log
    subscribers = live.plan.subscribers
    total = scenario.probes.rounds * len(subscribers) * len(scenario.services)
    done = 0
    for round_no in range(1, scenario.probes.rounds + 1):
        for sub in subscribers:
            for service in scenario.services:
                result = live.probe(sub, service.name, round_no=round_no)
                done += 1
                mark = "ok " if result.ok else "BLK"
                log(f"  [{done}/{total}] {mark} {sub} → {service.name} ({result.outcome})")
                if scenario.probes.transfer_bytes and result.ok:
                    transfer = live.probe(
                        sub, service.name, round_no=round_no, path="/bulk",
                        range_bytes=scenario.probes.transfer_bytes,
                    )  # fmt: skip
                    kbps = (transfer.speed_download_bps or 0) * 8 / 1000
                    log(f"      transfer {transfer.size_download} B at {kbps:,.0f} kbit/s "
                        f"({transfer.outcome})")  # fmt: skip
        if scenario.probes.interval_s and round_no < scenario.probes.rounds:
            time.sleep(scenario.probes.interval_s)


def _bulk_transfer(live: LiveLab) -> dict[str, Any]:
    """Fetch /bulk from a reachable innocent service; show it ran through the switch, not the
    controller: TSPU port counters grow by the transfer while the controller saw a handful."""
    results = read_results(live.writer.path)
    reachable = [r["service"] for r in results if r["ok"] and r["role"] == "innocent"]
    if not reachable:
        return {"skipped": "no reachable innocent service"}
    service = reachable[0]
    sub = live.plan.subscribers[0]
    before = parse_dump_ports(live.lab.dump_ports(live.tspu_switch))
    result = live.probe(sub, service, path="/bulk", timeout_s=60, record=False)
    after = parse_dump_ports(live.lab.dump_ports(live.tspu_switch))
    live.writer.write({**result.to_json(), "kind": "bulk"})
    delta = {
        port: {k: after[port][k] - before.get(port, {}).get(k, 0) for k in after[port]}
        for port in after
    }
    mbps = (result.speed_download_bps or 0) * 8 / 1e6
    live.log(f"  bulk {sub} → {service}: {result.size_download} B at {mbps:.0f} Mbit/s")
    return {"service": service, "ok": result.ok, "bytes": result.size_download,
            "mbit_s": round(mbps, 1), "tspu_port_delta": delta}  # fmt: skip


def _controller_event_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in read_results(path):
        counts[event.get("event", "?")] = counts.get(event.get("event", "?"), 0) + 1
    return counts


def run_scenario_cli(path: str, runs_dir: str, capture: bool = False) -> int:
    """`tspulab run`: validate, run, print a summary and where the report is."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as err:
        print(err, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("tspulab run: needs root (network namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    if scenario.isps or scenario.timeline:
        return _run_campaign_cli(scenario, Path(runs_dir))
    try:
        outcome = run_in_sandbox(run_scenario, scenario, Path(runs_dir), capture=capture)
    except KeyboardInterrupt:
        print(
            "interrupted: the lab was torn down; results so far are in the run directory",
            file=sys.stderr,
        )
        return 130
    from tspulab.metrics.report import print_summary

    print_summary(outcome.summary, outcome.run_dir)
    if outcome.leftovers:
        print(f"note: teardown still had to remove: {outcome.leftovers}", file=sys.stderr)
    return 0


def _run_campaign_cli(scenario: Scenario, runs_dir: Path) -> int:
    from tspulab.scenario.campaign_runner import NotImplementedInRunner, run_campaign

    try:
        outcome = run_in_sandbox(run_campaign, scenario, runs_dir)
    except NotImplementedInRunner as err:
        print(err, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the lab was torn down; results so far are in the run directory",
            file=sys.stderr,
        )
        return 130
    results = outcome.report.expectations
    failed = [r for r in results if not r.passed]
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.message}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    print(f"report: {outcome.report.path}")
    if outcome.lateness_s > 1:
        print(f"note: the run fell behind the scenario clock by up to {outcome.lateness_s:.1f} s "
              "(real time); events keep their scheduled scenario times")  # fmt: skip
    if outcome.leftovers:
        print(f"note: teardown still had to remove: {outcome.leftovers}", file=sys.stderr)
    return 1 if failed else 0
