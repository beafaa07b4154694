"""`tspulab strategies --from-capture PCAP`: which behaviour of which profile a failure shows.

A user's capture of a failing connection (taken at the client) shows a *symptom*; each profile,
replayed over the same capture with the flow's name in its registry, *predicts* one. A flow's
symptom is read from its packets:

``no-synack``   the SYN went unanswered (IP mode, §2.2 IP; §9.13)
``blackhole``   the client's first data got no answer at all, retransmitted or not (SNI-IV, §9.2;
                a QUIC Initial unanswered, §9.14-15)
``reset``       a RST from the server's side came after the client's first data, before any
                server data (SNI-I rewrite, §9.3)
``stall``       the server sent data, then nothing while the client kept sending or
                retransmitting (SNI-II, §9.4; the 16-20 KB freeze, §9.18)
``ok``          the server answered and nothing above happened (a policing profile predicts
                ``slow``, which this reader cannot tell from ``ok`` on a short capture)

The answer lists, per flow, the profiles whose verdict predicts the symptom seen, with the rule
and its source, then those that predict something else.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.engine_replay import replay_with_profile
from tspulab.dpi.errors import DecodeError, Malformed
from tspulab.dpi.packet import PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_RST, TCP_SYN, decode
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.profile import ProfileError, load_profile, profile_names
from tspulab.dpi.registry import load_inline
from tspulab.strategies.verdicts import Judgement

PREDICTS = {
    "drop": "blackhole",
    "reset": "reset",
    "drop-after": "stall",
    "freeze-after-bytes": "stall",
    "police": "slow",
    "random-loss": "slow",
    "allow": "ok",
    "detect": "ok",
    "host-block": "ok",
}
_ALSO = {"slow": {"ok", "slow"}, "blackhole": {"blackhole", "no-synack"}}


@dataclass
class _Flow:
    proto: int
    client: tuple[bytes, int]
    server: tuple[bytes, int]
    syn_seen: bool = False
    synack_seen: bool = False
    first_data: float | None = None
    first_seq: int | None = None
    retransmits: int = 0
    server_after_data: int = 0
    server_payload: int = 0
    reset_from_server: bool = False
    last_server: float = 0.0
    client_after_server: int = 0
    seqs: set[int] = field(default_factory=set)

    def symptom(self) -> str:
        if self.proto == PROTO_TCP and self.syn_seen and not self.synack_seen:
            return "no-synack"
        if self.first_data is None:
            return "ok" if self.synack_seen else "unknown"
        if self.reset_from_server and self.server_payload == 0:
            return "reset"
        if self.server_after_data == 0:
            return "blackhole"
        if self.server_payload > 0 and self.client_after_server >= 2:
            return "stall"
        return "ok"


def observe(path: str) -> dict[tuple[int, bytes, int, bytes, int], _Flow]:
    """Per flow (proto, client, port, server, port), the symptom counters of a capture."""
    flows: dict[tuple[int, bytes, int, bytes, int], _Flow] = {}
    for ts, linktype, frame in read_capture(path):
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        if pkt.proto not in (PROTO_TCP, PROTO_UDP) or not pkt.has_l4:
            continue
        fwd = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        rev = (pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport)
        if fwd in flows:
            flow, from_client = flows[fwd], True
        elif rev in flows:
            flow, from_client = flows[rev], False
        else:
            syn = pkt.proto == PROTO_TCP and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            if pkt.proto == PROTO_TCP and not syn and pkt.sport < pkt.dport:
                fwd = rev  # mid-flow start: the lower port is the server's
                flow = flows[fwd] = _Flow(pkt.proto, (pkt.dst, pkt.dport), (pkt.src, pkt.sport))
                from_client = False
            else:
                flow = flows[fwd] = _Flow(pkt.proto, (pkt.src, pkt.sport), (pkt.dst, pkt.dport))
                from_client = True
        _count(flow, pkt, ts, from_client)
    return flows


def _count(flow: _Flow, pkt: object, ts: float, from_client: bool) -> None:
    flags = getattr(pkt, "tcp_flags", 0)
    payload: bytes = getattr(pkt, "payload", b"")
    if from_client:
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            flow.syn_seen = True
        if payload:
            seq = getattr(pkt, "seq", 0)
            if flow.first_data is None:
                flow.first_data, flow.first_seq = ts, seq
            elif flow.proto == PROTO_TCP and seq in flow.seqs:
                flow.retransmits += 1
            flow.seqs.add(seq)
            if flow.server_payload and ts > flow.last_server:
                flow.client_after_server += 1
        return
    if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK:
        flow.synack_seen = True
    if flow.proto == PROTO_UDP:
        flow.synack_seen = True
    if flow.first_data is not None and ts >= flow.first_data:
        flow.server_after_data += 1
        if flags & TCP_RST:
            flow.reset_from_server = True
        if payload:
            flow.server_payload += len(payload)
            flow.last_server = ts
            flow.client_after_server = 0


def _names(path: str) -> list[str]:
    from tspulab.replay import replay_capture

    return sorted(
        {f.classification.sni for f in replay_capture(path).flows if f.classification.sni}
    )


def diagnose(path: str, profiles: Sequence[str], extra_names: Sequence[str] = ()) -> list[str]:
    flows = observe(path)
    names = sorted(set(_names(path)) | set(extra_names))
    registry = load_inline(names, "names in the capture") if names else None
    lines = [f"{path}: {len(flows)} flows; registry for the replay: {', '.join(names) or '-'}"]
    judged: dict[str, dict[tuple[bytes, int, bytes, int], Judgement]] = {}
    for p in profiles:
        profile = load_profile(p)
        eng = TspuEngine(profile, registry or load_inline([], "empty"), [])
        result = replay_with_profile(read_capture(path), eng)
        judged[p] = {
            (fv.flow.client_addr, fv.flow.client_port, fv.flow.server_addr, fv.flow.server_port):
            Judgement.of(fv)
            for fv in result.flows
        }  # fmt: skip
    for key, flow in flows.items():
        proto, caddr, cport, saddr, sport = key
        seen = flow.symptom()
        matching: list[str] = []
        other: list[str] = []
        for p in profiles:
            j = judged[p].get((caddr, cport, saddr, sport))
            if j is None:
                continue
            predicted = PREDICTS.get(j.action, "ok")
            label = f"{p} ({j.action}{', rule ' + j.rule if j.rule else ''})"
            (matching if seen in _ALSO.get(predicted, {predicted}) else other).append(
                label if predicted == seen else f"{label} predicts {predicted}"
            )
        transport = "tcp" if proto == PROTO_TCP else "udp"
        lines.append(
            f"{transport} {_addr(caddr)}:{cport} -> {_addr(saddr)}:{sport}: seen {seen} "
            f"(first data retransmitted {flow.retransmits}x, {flow.server_payload} B from the "
            f"server after it{', RST from the server side' if flow.reset_from_server else ''})"
        )
        lines.append(f"    matches: {', '.join(matching) or 'none'}")
        lines.append(f"    does not: {', '.join(other) or 'none'}")
    return lines


def _addr(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def diagnose_cli(path: str, profiles: Sequence[str], target: str | None = None) -> int:
    try:
        lines = diagnose(path, list(profiles) or profile_names(), [target] if target else [])
    except (ProfileError, OSError, Malformed, ValueError) as err:
        print(f"tspulab strategies --from-capture: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
