"""A capture replayed through a `TspuEngine`: one verdict per flow, with its packets' fates.

What `tspulab replay --profile` prints (tspulab/profile_replay.py) and what the parity check
compares against the live controller; kept apart from the engine, which judges single packets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tspulab.dpi.classify import Classification
from tspulab.dpi.engine import DetectEvent, TspuEngine
from tspulab.dpi.flow import FlowState
from tspulab.dpi.packet import PROTO_TCP, PROTO_UDP
from tspulab.dpi.policy import text
from tspulab.dpi.verdict import Verdict


@dataclass(slots=True)
class FlowVerdict:
    """One flow of a replay under a profile: its last verdict and what happened to its packets."""

    flow: FlowState
    verdict: Verdict
    classification: Classification | None
    fates: dict[str, int] = field(default_factory=dict)
    """Packets per fate ("forward", "drop", "reset")."""

    def to_json(self) -> dict[str, object]:
        f = self.flow
        c = self.classification
        return {
            "transport": {PROTO_TCP: "tcp", PROTO_UDP: "udp"}.get(f.proto, f"ip{f.proto}"),
            "client": f"{text(f.client_addr)}:{f.client_port}",
            "server": f"{text(f.server_addr)}:{f.server_port}",
            "initiated_inside": f.initiated_inside,
            "protocol": str(c.protocol) if c is not None else None,
            "sni": c.sni if c is not None else None,
            "verdict": self.verdict.to_json(),
            "packets": dict(self.fates),
        }


@dataclass(slots=True)
class ProfileReplay:
    flows: list[FlowVerdict]
    frames: int = 0
    undecoded: int = 0
    detections: list[DetectEvent] = field(default_factory=list)


def replay_with_profile(
    frames: Iterable[tuple[float, int, bytes]], engine: TspuEngine
) -> ProfileReplay:
    """Feed (timestamp, linktype, frame) through ``engine``; one ``FlowVerdict`` per flow, in order
    of first packet (a flow replaced after idle expiry or port reuse is reported as its own)."""
    result = ProfileReplay(flows=[])
    by_flow: dict[int, FlowVerdict] = {}
    for ts, linktype, frame in frames:
        result.frames += 1
        decision = engine.process(frame, ts, linktype=linktype)
        if engine.detections:  # drained as they come: the engine keeps a bounded backlog
            result.detections += engine.drain_detections()
        flow = decision.flow
        if flow is None:
            result.undecoded += 1
            continue
        entry = by_flow.get(id(flow))
        if entry is None or entry.flow is not flow:
            entry = by_flow[id(flow)] = FlowVerdict(flow, decision.verdict, None)
            result.flows.append(entry)
        entry.verdict = decision.verdict
        entry.classification = decision.classification or entry.classification
        entry.fates[decision.fate.value] = entry.fates.get(decision.fate.value, 0) + 1
    return result
