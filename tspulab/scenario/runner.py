"""Run a scenario: bring the lab up, start real servers, probe from subscribers, report, tear down.

Everything the run makes is recorded in `<run dir>/made.jsonl` as it is made; teardown runs at
normal exit, on Ctrl-C and on SIGTERM, and `tspulab clean` replays the record after a SIGKILL.
Probe results are written to `<run dir>/results.jsonl` as they are measured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tspulab.controllers.config import ControllerConfig, write_registry
from tspulab.controllers.control import send_command
from tspulab.controllers.pipeline import IPNetwork
from tspulab.dpi.registry import Registry
from tspulab.lab.network import Lab
from tspulab.lab.ofctl import parse_dump_flows, parse_dump_ports
from tspulab.lab.pki import RunCA
from tspulab.lab.record import RunRecord
from tspulab.lab.services import start_dnsmasq, start_nginx, write_resolv_conf
from tspulab.metrics.report import write_report
from tspulab.metrics.results import ResultWriter, read_results
from tspulab.metrics.summary import ServiceSpec, Summary, summarise
from tspulab.scenario.build import build_registry, plan_lab
from tspulab.scenario.model import Scenario
from tspulab.scenario.probes import https_probe
from tspulab.scenario.schema import ScenarioError, load_scenario
from tspulab.topologies.single_isp import (
    ISP_NET,
    TSPU_DPID,
    TSPU_SUBSCRIBER_PORT,
    TSPU_UPSTREAM_PORT,
    SingleIspTopo,
)


class Interrupted(KeyboardInterrupt):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


@dataclass
class RunOutcome:
    run_dir: Path
    summary: Summary
    leftovers: list[str] = field(default_factory=list)


def make_run_dir(runs_dir: Path, name: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / f"{name}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_dir / f"{name}-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir.resolve()


def tspu_controller_config(
    run_dir: Path,
    record: RunRecord,
    profile: str,
    registry: Registry,
    prefixes: list[IPNetwork],
    *,
    time_scale: float = 1.0,
    fail_mode: str = "closed",
    sets: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """What the TSPU app is told: ports and their sides, profile, registry, control channel."""
    registry_file = run_dir / "registry.json"
    write_registry(registry_file, registry)
    nft_table = "tspulab_" + hashlib.blake2b(str(run_dir).encode(), digest_size=5).hexdigest()
    record.nft_table("netdev", nft_table)
    return {
        "dpid": TSPU_DPID,
        "subscriber_port": TSPU_SUBSCRIBER_PORT,
        "upstream_port": TSPU_UPSTREAM_PORT,
        "subscriber_if": f"tspu1-eth{TSPU_SUBSCRIBER_PORT}",
        "upstream_if": f"tspu1-eth{TSPU_UPSTREAM_PORT}",
        "registry_prefixes": [str(p) for p in prefixes],
        "registry_file": str(registry_file),
        "profile": profile,
        "subscriber_nets": [str(ISP_NET)],
        "time_scale": time_scale,
        "nft_table": nft_table,
        "control_socket": str(run_dir / "controller.sock"),
        "fail_mode": fail_mode,
        "profile_sets": {name: list(entries) for name, entries in (sets or {}).items()},
    }


def netem_available() -> bool:
    return Path("/sys/module/sch_netem").exists()


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
    run_dir = make_run_dir(runs_dir, scenario.name)
    record = RunRecord(run_dir)
    registry = build_registry(scenario)
    prefixes = registry.aggregated_prefixes()
    plan = plan_lab(scenario)
    meta = {
        "scenario": str(scenario.path),
        "name": scenario.name,
        "started": time.time(),
        "tspu": tspu,
        "datapath": "userspace (netdev)",
        "netem": netem_available(),
        "registry_entries": registry.entry_count(),
        "registry_prefixes_aggregated": len(prefixes),
        "cloud_hosts": plan.cloud_hosts,
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=1))
    config_path = run_dir / "controller.json"
    ControllerConfig.dump(
        config_path,
        tspu=tspu_controller_config(
            run_dir, record, scenario.profile, registry, prefixes, sets=scenario.profile_sets
        )
        if tspu
        else None,
        events_log=run_dir / "controller-events.jsonl",
    )
    lab = Lab(run_dir, SingleIspTopo(spec=plan.topology), config_path, record)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    leftovers: list[str] = []
    results_path = run_dir / "results.jsonl"
    extra: dict[str, Any] = {}
    try:
        log(f"run directory: {run_dir}")
        lab.start()
        log(f"lab up in {sum(lab.timings.values()):.1f} s ({len(lab.net.hosts)} hosts)")  # type: ignore[union-attr]
        tcpdump = _start_capture(run_dir, record) if capture else None
        ca = RunCA(run_dir / "pki")
        for host_name, sites in plan.sites.items():
            start_nginx(lab.host(host_name), sites, ca, run_dir, record)
        start_dnsmasq(
            lab.host("dns1"), str(scenario.dns.address), plan.dns_records, run_dir, record
        )
        resolv = write_resolv_conf(run_dir, str(scenario.dns.address))
        with ResultWriter(results_path) as writer:
            _probe_rounds(scenario, lab, plan.subscribers, ca.ca_path, resolv, writer, log)
            if bulk_transfer:
                extra["bulk"] = _bulk_transfer(
                    scenario, lab, plan.subscribers[0], ca.ca_path, resolv, writer, log
                )
        if tcpdump is not None:
            _stop_capture(tcpdump)
        extra["tspu_flows"] = [f.__dict__ for f in parse_dump_flows(lab.dump_flows("tspu1"))]
        extra["tspu_ports"] = parse_dump_ports(lab.dump_ports("tspu1"))
        extra["controller_events"] = _controller_event_counts(run_dir / "controller-events.jsonl")
        if tspu:
            extra["controller_stats"] = send_command(run_dir / "controller.sock", {"cmd": "stats"})
    finally:
        signal.signal(signal.SIGTERM, previous)
        leftovers = lab.stop()
    in_registry = {
        str(s.address) for s in scenario.services if registry.contains_address(str(s.address))
    }
    services = [
        ServiceSpec(s.name, s.role, s.users, str(s.address), s.cloud) for s in scenario.services
    ]
    summary = summarise(
        scenario.name,
        services,
        read_results(results_path),
        blocked_addresses=registry.address_count(4) + registry.address_count(6),
        registry_prefixes=len(prefixes),
        in_registry=in_registry,
    )
    summary.extra.update(extra)
    summary.extra["lab_timings_s"] = {k: round(v, 3) for k, v in lab.timings.items()}
    summary.extra["environment"] = {"netem": meta["netem"], "datapath": meta["datapath"]}
    (run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=1))
    write_report(run_dir, summary, meta)
    return RunOutcome(run_dir, summary, leftovers)


def _probe_rounds(
    scenario: Scenario,
    lab: Lab,
    subscribers: tuple[str, ...],
    ca: Path,
    resolv: Path,
    writer: ResultWriter,
    log: Any,
) -> None:
    total = scenario.probes.rounds * len(subscribers) * len(scenario.services)
    for round_no in range(1, scenario.probes.rounds + 1):
        for sub in subscribers:
            for service in scenario.services:
                result = https_probe(
                    lab.host(sub),
                    subscriber=sub,
                    service=service.name,
                    role=service.role,
                    domain=service.domains[0],
                    ca=ca,
                    resolv_conf=resolv,
                    timeout_s=scenario.probes.timeout_s,
                    round_no=round_no,
                )
                writer.write(result.to_json())
                mark = "ok " if result.ok else "BLK"
                log(f"  [{writer.count}/{total}] {mark} {sub} → {service.name} ({result.outcome})")
                if scenario.probes.transfer_bytes and result.ok:
                    transfer = https_probe(
                        lab.host(sub),
                        subscriber=sub,
                        service=service.name,
                        role=service.role,
                        domain=service.domains[0],
                        ca=ca,
                        resolv_conf=resolv,
                        timeout_s=scenario.probes.timeout_s,
                        round_no=round_no,
                        path="/bulk",
                        range_bytes=scenario.probes.transfer_bytes,
                    )
                    writer.write(transfer.to_json())
                    kbps = (transfer.speed_download_bps or 0) * 8 / 1000
                    log(f"      transfer {transfer.size_download} B at {kbps:,.0f} kbit/s "
                        f"({transfer.outcome})")  # fmt: skip
        if scenario.probes.interval_s and round_no < scenario.probes.rounds:
            time.sleep(scenario.probes.interval_s)


def _bulk_transfer(
    scenario: Scenario,
    lab: Lab,
    sub: str,
    ca: Path,
    resolv: Path,
    writer: ResultWriter,
    log: Any,
) -> dict[str, Any]:
    """Fetch /bulk from a reachable innocent service; show it ran through the switch, not the
    controller: TSPU flow counters grow by the transfer while the controller saw no packet."""
    results = read_results(writer.path)
    reachable = [r["service"] for r in results if r["ok"] and r["role"] == "innocent"]
    if not reachable:
        return {"skipped": "no reachable innocent service"}
    service = next(s for s in scenario.services if s.name == reachable[0])
    before = parse_dump_ports(lab.dump_ports("tspu1"))
    result = https_probe(
        lab.host(sub),
        subscriber=sub,
        service=service.name,
        role=service.role,
        domain=service.domains[0],
        ca=ca,
        resolv_conf=resolv,
        timeout_s=60,
        round_no=0,
        path="/bulk",
    )
    after = parse_dump_ports(lab.dump_ports("tspu1"))
    rec = {**result.to_json(), "kind": "bulk"}
    writer.write(rec)
    delta = {
        port: {k: after[port][k] - before.get(port, {}).get(k, 0) for k in after[port]}
        for port in after
    }
    mbps = (result.speed_download_bps or 0) * 8 / 1e6
    log(f"  bulk {sub} → {service.name}: {result.size_download} B at {mbps:.0f} Mbit/s")
    return {"service": service.name, "ok": result.ok, "bytes": result.size_download,
            "mbit_s": round(mbps, 1), "tspu_port_delta": delta}  # fmt: skip


def _start_capture(run_dir: Path, record: RunRecord) -> subprocess.Popen[bytes]:
    """tcpdump on the TSPU switch's subscriber-side port (root namespace): what the subscribers
    sent and what the TSPU let through to them, for `tspulab parity`."""
    from tspulab.parity import CAPTURE_NAME

    iface = f"tspu1-eth{TSPU_SUBSCRIBER_PORT}"
    proc = subprocess.Popen(
        ["tcpdump", "-i", iface, "-U", "-s", "0", "-w", str(run_dir / CAPTURE_NAME)],
        stdout=subprocess.DEVNULL, stderr=(run_dir / "tcpdump.log").open("ab"),
        start_new_session=True,
    )  # fmt: skip
    record.process(proc.pid, "tcpdump", group_leader=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "listening" not in (run_dir / "tcpdump.log").read_text():
        time.sleep(0.05)
    return proc


def _stop_capture(proc: subprocess.Popen[bytes]) -> None:
    time.sleep(0.2)  # let the last packets reach the file
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
    try:
        outcome = run_scenario(scenario, Path(runs_dir), capture=capture)
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
