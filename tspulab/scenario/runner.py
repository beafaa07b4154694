"""Run a scenario: bring the lab up, run its timeline and probes, report, tear down.

One path for every scenario: a single-ISP scenario is a campaign with one ISP. The run happens in
the caller's sandbox (`run_in_sandbox(run_scenario, ...)`, which `tspulab run` does); everything
it makes is recorded in `<run dir>/made.jsonl`, and probe results are written to
`<run dir>/results.jsonl` as they are measured, so a run killed at any moment keeps them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tspulab.contracts import EVENTS_FILE, RESULTS_FILE
from tspulab.dpi.registry import Registry
from tspulab.lab.linkshape import DelaysUnavailable, decide, netem_supported
from tspulab.lab.ofctl import parse_dump_flows, parse_dump_ports
from tspulab.lab.sandbox import run_in_sandbox
from tspulab.methods.custom import CommandsNotAllowed, require_allowed
from tspulab.methods.process import MethodError
from tspulab.metrics.boxes import by_box
from tspulab.metrics.progress import Progress
from tspulab.metrics.report import RunReport, write_report
from tspulab.metrics.results import read_results
from tspulab.metrics.summary import (
    ServiceSpec,
    Summary,
    population_json,
    subscriber_views,
    summarise,
)
from tspulab.metrics.timeline import build_timeline
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario
from tspulab.scenario.schema import ScenarioError, load_scenario
from tspulab.scenario.timeline_runner import (
    NotImplementedInRunner,
    TimelineRun,
    check_runnable,
    planned_probes,
)


class RunInterrupted(KeyboardInterrupt):
    """The run was ended by SIGTERM or Ctrl-C; it was torn down, and its report (which says so,
    under "Faults") was written from what it had measured."""

    def __init__(self, run_dir: str, report: str) -> None:
        super().__init__(run_dir, report)
        self.run_dir = run_dir
        self.report = report


@dataclass
class RunOutcome:
    run_dir: Path
    summary: Summary
    report: RunReport
    leftovers: list[str] = field(default_factory=list)
    lateness_s: float = 0.0


def run_scenario(
    scenario: Scenario,
    runs_dir: Path,
    *,
    tspu: bool = True,
    bulk_transfer: bool = True,
    capture: bool = False,
    fail_mode: Literal["closed", "open"] | None = None,
    no_delays: bool = False,
    log: Any = print,
    show_progress: bool = False,
    allow_commands: bool = False,
) -> RunOutcome:
    """Run one scenario end to end. `tspu=False` runs each TSPU position as a learning switch;
    `bulk_transfer` ends with a 32 MiB download through the first ISP's TSPU, to show the switch,
    not the controller, carries judged flows; `allow_commands` lets `kind: custom` methods run
    the commands the scenario names (refused before bring-up without it)."""
    check_runnable(scenario)
    require_allowed(scenario, allow_commands)
    live = LiveLab(
        scenario, runs_dir, tspu=tspu, capture=capture, fail_mode=fail_mode, no_delays=no_delays,
        log=log,
    )  # fmt: skip
    progress = Progress(len(scenario.timeline), planned_probes(scenario)) if show_progress else None
    timeline = TimelineRun(live, progress)
    extra: dict[str, Any] = {}
    interrupted: KeyboardInterrupt | None = None
    try:
        with live:
            timeline.run()
            down = live.faults.reasons()
            if bulk_transfer:
                extra["bulk"] = (
                    {"skipped": "; ".join(down)} if down else _bulk_transfer(live)
                )  # fmt: skip
            # What a fault left broken may not answer: say so instead of ending the run.
            try:
                extra["tspu_flows"] = [
                    f.__dict__ for f in parse_dump_flows(live.lab.dump_flows(live.tspu_switch))
                ]
                extra["tspu_ports"] = parse_dump_ports(live.lab.dump_ports(live.tspu_switch))
                if tspu:
                    extra["controller_stats"] = live.controller_stats()
            except (OSError, ValueError, subprocess.SubprocessError) as err:
                extra["counters_skipped"] = f"{err}" + (f" ({'; '.join(down)})" if down else "")
    except KeyboardInterrupt as exc:  # SIGTERM (labrun.Interrupted) or Ctrl-C: torn down
        interrupted = exc
        timeline.faults.interrupted(exc)
    finally:
        timeline.faults.close()
        if progress is not None:
            progress.close()
        extra["controller_events"] = _event_counts(live.run_dir / EVENTS_FILE)
        extra["lateness_s"] = round(timeline.lateness_s, 3)
        extra["lab_timings_s"] = {k: round(v, 3) for k, v in live.lab.timings.items()}
        extra["environment"] = {
            "netem": live.meta.netem, "datapath": live.meta.datapath, "delays": live.meta.delays
        }  # fmt: skip
        summary = summarise_run(live, extra, timeline.published)
    report = write_report(live.run_dir)
    if interrupted is not None:
        raise RunInterrupted(str(live.run_dir), str(report.path)) from interrupted
    return RunOutcome(live.run_dir, summary, report, live.leftovers, timeline.lateness_s)


def summarise_run(
    live: LiveLab, extra: dict[str, Any], registry: Registry | None = None
) -> Summary:
    """The whole run's per-service summary (direct probes of every ISP), written to
    summary.json beside the run's own figures (bulk transfer, flows, timings). `registry`: the
    last one the timeline published (the lab's first one by default)."""
    scenario = live.scenario
    registry = registry if registry is not None else live.registry
    in_registry = {
        str(s.address) for s in scenario.services if registry.contains_address(str(s.address))
    }
    services = _service_specs(live)
    direct = [
        r
        for r in read_results(live.run_dir / RESULTS_FILE)
        if r.get("method", "direct") == "direct"
    ]
    summary = summarise(
        scenario.name,
        services,
        direct,
        blocked_addresses=registry.address_count(4) + registry.address_count(6),
        registry_prefixes=len(registry.aggregated_prefixes()),
        in_registry=in_registry,
        degraded_below_kbps=scenario.probes.degraded_below_kbps,
    )
    summary.extra.update(extra)
    if scenario.populations:  # k of N members broken, pooled and per subscriber (customers)
        views = subscriber_views(
            services,
            direct,
            _weights(live),
            degraded_below_kbps=scenario.probes.degraded_below_kbps,
        )
        summary.extra["populations"] = population_json(summary, views)
    # which box (the TSPU, the ISP's old filter) stopped each failed probe (tspulab.metrics.boxes)
    summary.extra["by_box"] = by_box(
        direct, read_results(live.run_dir / EVENTS_FILE), live.address_of_host,
        {s.name: (s.role, live.addresses[s.name]) for s in scenario.services}, in_registry,
    )  # fmt: skip
    (live.run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=1))
    return summary


def _service_specs(live: LiveLab) -> list[ServiceSpec]:
    return [
        ServiceSpec(s.name, s.role, s.users, str(s.address), s.cloud, s.population)
        for s in live.scenario.services
    ]


def _weights(live: LiveLab) -> dict[str, dict[str, float]]:
    return {isp.name: dict(isp.weights) for isp in live.meta.isps}


def bulk_choice(
    records: list[dict[str, Any]],
    services: list[ServiceSpec],
    isp: str,
    hosts: list[str],
    degraded_below_kbps: float = 1000.0,
) -> tuple[str, str] | str:
    """(subscriber, service) for the end-of-run transfer: a service the run's last probe round
    judged reachable from that subscriber of `isp` (an innocent one first, then any), so the
    transfer is not measured against a service the run blocked; or why there is none."""
    timeline = build_timeline(records, services, degraded_below_kbps=degraded_below_kbps)
    point = next(
        (
            p
            for b in reversed(timeline.rounds)
            if (p := timeline.point(b, isp)) and p.summary.services
        ),
        None,
    )
    if point is None:
        return f"no direct probe from {isp} to judge a service by"
    for role in ("innocent", "target"):
        for host in hosts:
            mine = point.subscribers.summaries.get(host)
            for s in mine.services if mine else []:
                if s.role == role and not s.broken:
                    return host, s.name
    broken = sorted({s.name for s in point.summary.services if s.broken})
    return (
        f"no service reachable from {isp} in the run's last probe round ({point.bucket.label}, "
        f"step '{point.bucket.step}'; broken: {', '.join(broken) or 'none measured'})"
    )


def _bulk_transfer(live: LiveLab) -> dict[str, Any]:
    """Fetch /bulk from a service the run found reachable at its end; show it ran through the
    switch, not the controller: TSPU port counters grow by the transfer while the controller saw
    a handful."""
    first_isp = live.isps[0].name
    hosts = [s for s, isp in live.isp_of_host.items() if isp == first_isp]
    uncovered = set(live.isps[0].uncovered_hosts(tuple(hosts)))
    hosts.sort(key=lambda h: h in uncovered)  # through the TSPU: a host it covers first
    choice = bulk_choice(
        read_results(live.writer.path), _service_specs(live), first_isp, hosts,
        live.scenario.probes.degraded_below_kbps,
    )  # fmt: skip
    if isinstance(choice, str):
        live.log(f"  bulk transfer skipped: {choice}")
        return {"skipped": choice}
    sub, service = choice
    before = parse_dump_ports(live.lab.dump_ports(live.tspu_switch))
    result = live.probe(sub, service, path="/bulk", timeout_s=60, record=False)
    after = parse_dump_ports(live.lab.dump_ports(live.tspu_switch))
    live.writer.write({**result.to_json(), "kind": "bulk", "isp": first_isp, "method": "direct"})
    delta = {
        port: {k: after[port][k] - before.get(port, {}).get(k, 0) for k in after[port]}
        for port in after
    }
    mbps = (result.speed_download_bps or 0) * 8 / 1e6
    live.log(
        f"  bulk {sub} → {service}: {result.size_download} B at {mbps:.0f} Mbit/s"
        + ("" if result.ok else f" (failed: {result.outcome})")
    )
    return {"service": service, "ok": result.ok, "bytes": result.size_download,
            "mbit_s": round(mbps, 1), "subscriber": sub, "outcome": result.outcome,
            "tspu_port_delta": delta}  # fmt: skip


def _event_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in read_results(path):
        name = str(event.get("event", "?"))
        counts[name] = counts.get(name, 0) + 1
    return counts


def run_scenario_cli(
    path: str,
    runs_dir: str,
    capture: bool = False,
    no_delays: bool = False,
    allow_commands: bool = False,
) -> int:
    """`tspulab run`: validate, run in a sandbox, print a summary and where the report is."""
    try:
        scenario = load_scenario(path)
        check_runnable(scenario)
        require_allowed(scenario, allow_commands)
        decide(scenario.links, no_delays=no_delays, netem=netem_supported(), scenario=str(path))
    except (
        ScenarioError, NotImplementedInRunner, DelaysUnavailable, CommandsNotAllowed, MethodError
    ) as err:  # fmt: skip
        print(err, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("tspulab run: needs root (network namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    try:
        outcome: RunOutcome = run_in_sandbox(
            run_scenario, scenario, Path(runs_dir), capture=capture, no_delays=no_delays,
            show_progress=bool(scenario.timeline), allow_commands=allow_commands,
        )  # fmt: skip
    except MethodError as err:  # a method that cannot start (a custom tool's command, readiness)
        print(f"tspulab run: {err}", file=sys.stderr)
        print("the lab was torn down; results so far are in the run directory", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(
            "interrupted: the lab was torn down; results so far are in the run directory",
            file=sys.stderr,
        )
        if isinstance(err, RunInterrupted):
            print(f"report: {err.report}", file=sys.stderr)
        return 130
    from tspulab.metrics.report import print_summary

    print_summary(outcome.summary, outcome.run_dir, timeline=outcome.report.timeline)
    results = outcome.report.expectations
    failed = [r for r in results if not r.passed]
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.message}")
    if results:
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    faults = outcome.report.faults
    if faults:
        injected = sum(1 for f in faults if f.phase == "injected")
        not_done = [f for f in faults if f.phase == "failed"]
        print(
            f"faults: {injected} injected, {len(not_done)} failed or not applied "
            "(the report's Faults section has when and what traffic did)"
        )
        for f in not_done:
            print(f"  {f.fault}: {f.detail}")
    print(f"report: {outcome.report.path}")
    if outcome.lateness_s > 1:
        print(f"note: the run fell behind the scenario clock by up to {outcome.lateness_s:.1f} s "
              "(real time); events keep their scheduled scenario times")  # fmt: skip
    if outcome.leftovers:
        print(f"note: teardown still had to remove: {outcome.leftovers}", file=sys.stderr)
    return 1 if failed else 0
