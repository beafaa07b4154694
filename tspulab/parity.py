"""Live verdicts against replayed ones: the controller's log vs `replay` of a capture of the run.

A run with capture on records each TSPU switch's subscriber-side port with tcpdump (one pcap per
ISP, `capture-<isp>.pcap`). Feeding each capture to a fresh engine with that TSPU's own
configuration (profile, registry, profile sets, subscriber networks, time scale) must give, flow
by flow, the verdicts that TSPU logged:
both call the same `TspuEngine.process`, so a difference means the live path lost or reordered
packets, or state leaked between flows.

Flows to registry addresses never reach the controller (the switch's registry table drops them),
so they are compared separately: replay must say `drop` for each.

    tspulab parity RUN_DIR
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tspulab.contracts import CONTROLLER_FILE, EVENTS_FILE, EventKind, events_of
from tspulab.controllers.config import ControllerConfig, TspuConfig, read_registry
from tspulab.controllers.tspu import endpoints
from tspulab.dpi.engine import engine_for
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.profile import load_profile
from tspulab.metrics.results import read_results


def capture_name(isp: str) -> str:
    """The pcap of one ISP's TSPU subscriber-side port."""
    return f"capture-{isp}.pcap"


FlowId = tuple[int, str, int, str, int]


@dataclass
class ParityReport:
    compared: int = 0
    agree: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    registry_flows: int = 0
    not_inspected: int = 0
    """Non-TCP/UDP flows (ICMP, neighbour discovery): the switch forwards them uninspected."""
    registry_not_dropped: list[FlowId] = field(default_factory=list)
    only_live: list[FlowId] = field(default_factory=list)
    tspus: list[str] = field(default_factory=list)
    """The TSPUs (ISPs) compared."""

    @property
    def ok(self) -> bool:
        return (
            not self.mismatches and not self.registry_not_dropped and not self.only_live
        ) and self.compared > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "agree": self.agree,
            "mismatches": self.mismatches,
            "registry_flows": self.registry_flows,
            "not_inspected": self.not_inspected,
            "registry_not_dropped": [list(f) for f in self.registry_not_dropped],
            "only_live": [list(f) for f in self.only_live],
            "tspus": self.tspus,
            "ok": self.ok,
        }


def _flow_id(ep: dict[str, Any]) -> FlowId:
    return (ep["proto"], ep["client"], ep["client_port"], ep["server"], ep["server_port"])


def _comparable(verdict: dict[str, Any]) -> tuple[Any, ...]:
    return (verdict["action"], verdict.get("rule"), verdict.get("after_packets"))


def replay_verdicts(run_dir: Path, tspu: TspuConfig) -> dict[FlowId, list[dict[str, Any]]]:
    """First final verdict of every flow in one TSPU's capture, replayed with its configuration."""
    if not tspu.profile:
        raise ValueError(f"{run_dir}: TSPU {tspu.name} had no profile; nothing to compare")
    registry = read_registry(tspu.registry_file) if tspu.registry_file else None
    engine = engine_for(
        load_profile(tspu.profile), registry, tspu.subscriber_nets, tspu.time_scale,
        tspu.profile_sets,
    )  # fmt: skip
    seen: set[object] = set()
    out: dict[FlowId, list[dict[str, Any]]] = defaultdict(list)
    for ts, linktype, frame in read_capture(run_dir / capture_name(tspu.name)):
        d = engine.process(frame, ts, linktype=linktype)
        if d.flow is None or not d.verdict.final:
            continue
        marker = (d.flow.key, id(d.flow))
        if marker in seen:
            continue
        seen.add(marker)
        out[_flow_id(endpoints(d.flow).__dict__)].append(d.verdict.to_json())
    return out


def compare_run(run_dir: Path) -> ParityReport:
    """Every TSPU of the run whose port was captured, each against its own events."""
    config = ControllerConfig.load(run_dir / CONTROLLER_FILE)
    tspus = [t for t in config.tspus if (run_dir / capture_name(t.name)).exists()]
    if not tspus:
        raise ValueError(f"{run_dir}: no capture of a TSPU port (run with --capture)")
    events = read_results(run_dir / EVENTS_FILE)
    report = ParityReport()
    for tspu in tspus:
        live: dict[FlowId, list[dict[str, Any]]] = defaultdict(list)
        for event in events_of(events, EventKind.VERDICT):
            if event.get("tspu") == tspu.name:
                live[_flow_id(event["flow"])].append(event["verdict"])
        _compare(live, replay_verdicts(run_dir, tspu), report)
        report.tspus.append(tspu.name)
    return report


def _compare(
    live: dict[FlowId, list[dict[str, Any]]],
    replayed: dict[FlowId, list[dict[str, Any]]],
    report: ParityReport,
) -> None:
    for flow, verdicts in live.items():
        if flow not in replayed:
            report.only_live.append(flow)
            continue
        for lv, rv in zip(verdicts, replayed[flow], strict=False):
            report.compared += 1
            if _comparable(lv) == _comparable(rv):
                report.agree += 1
            else:
                report.mismatches.append({"flow": list(flow), "live": lv, "replay": rv})
    for flow, verdicts in replayed.items():
        if flow in live:
            continue
        if flow[0] not in (6, 17):
            report.not_inspected += 1
            continue
        # Not seen by the controller: dropped by the registry table before inspection.
        report.registry_flows += 1
        if any(v["action"] != "drop" for v in verdicts):
            report.registry_not_dropped.append(flow)


def parity_cli(run_dir: str) -> int:
    report = compare_run(Path(run_dir))
    print(json.dumps(report.to_json(), indent=1))
    return 0 if report.ok else 1
