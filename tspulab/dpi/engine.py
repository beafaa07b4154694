"""The TSPU engine: frames in, decisions out; what the live controller and the replay both call.

``TspuEngine.process(frame, now)`` decodes one frame, finds its flow (flow.py), runs the
classifier (classify.py) while the flow is under inspection, asks the policy (policy.py) for a
verdict under the behaviour profile (profile.py), and enforces it on this packet: the ``Fate``
(forward, drop, reset) of the packet under a police token bucket, a drop-after count, a freeze byte
count or a random loss draw. Once a flow's verdict is final, ``process`` is a dict lookup plus the
enforcement counters (the controller calls it at up to ~20 k packet-ins/s).

What the engine adds to the classifier, per profile setting (tspu-behaviour.md):

- the inspection budget: payload packets looked at before an undecided flow is let go;
- the 2021 first-packet rules (§3): a first payload of >= 101 bytes that is neither TLS, HTTP nor a
  SOCKS greeting ends inspection; after a classification no rule matched (a benign ClientHello,
  other TLS) the classifier is re-armed and looks again, until the 15-20 packet window is spent;
- the TCP split handshake (§2.3): a SYN from the server side ends inspection with ALLOW;
- state lifetime (§3): idle expiry from the profile; ``survives_fin_rst`` carries a final verdict
  over to a new connection on the same 5-tuple after FIN/RST (the flow table starts a new flow on
  a SYN after FIN/RST);
- ``reassembly: none`` rules under a reassembling profile (§5.7/§5.10, the 2024 throttle module
  that a two-segment split defeats while the blocking module does not): the segment that completed
  the ClientHello is re-read alone;
- host blocks (§5.8) and the ``detect`` log;
- desync detection (desync.py, the profile's ``desync``, §10.2 [A]): a fake whose TTL or IP ID
  differs from the flow's drops the flow, or blocks the subscriber from the server for a while.

``time_scale`` multiplies every profile timer (flow idle expiry, host-block durations) so a
scenario can compress time: with ``time_scale=0.01`` the 10-minute idle expiry of the Twitter
throttler takes 6 s of scenario time. Rates (police bits per second) and byte counts are not
scaled. ``now`` is always an argument; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from tspulab.dpi.classify import Classification, Classifier
from tspulab.dpi.desync import DesyncDetector, FlowMarks, ipv4_ident
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.flow import FlowState, FlowTable, Network
from tspulab.dpi.fragments import DEFAULT_TIMEOUT_S, FragmentCache, Held
from tspulab.dpi.http import looks_like_http_request
from tspulab.dpi.packet import (
    LINKTYPE_ETHERNET,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_SYN,
    Packet,
    decode,
)
from tspulab.dpi.policy import Context, HostBlock, Observation, evaluate, text
from tspulab.dpi.profile import Profile
from tspulab.dpi.reassembly import ReassemblyMode, find_client_hello, looks_like_tls_record
from tspulab.dpi.registry import Registry
from tspulab.dpi.serverblocks import ServerBlocks
from tspulab.dpi.verdict import (
    Allow,
    Detect,
    Drop,
    DropAfter,
    Fate,
    FreezeAfterBytes,
    Police,
    Reset,
    Verdict,
)
from tspulab.dpi.verdict import HostBlock as HostBlockVerdict

_NOT_IP = Allow(True, "not decodable as IP: forwarded", None)
#: detect events kept until drained (a live box drains them every packet-in)
DETECTIONS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one frame."""

    flow: FlowState | None
    verdict: Verdict
    classification: Classification | None
    packet: Packet | None
    fate: Fate = Fate.FORWARD
    """What happens to this very packet under the verdict."""
    first_final: bool = False
    """This packet made the flow's verdict final (a controller logs the verdict once, here)."""
    held: bool = False
    """An IP fragment the profile's fragment cache keeps (§2.4): a caller that buffers sends it
    with ``released``, not now; one that does not forwards it at once (``fate`` stays forward)."""
    released: tuple[bytes, ...] = ()
    """The frames a completed datagram releases now, in arrival order, later fragments carrying
    the first fragment's TTL (fragments.py)."""


@dataclass(frozen=True, slots=True)
class DetectEvent:
    """One ``detect`` log line: who used what, when (§1 TSPU-DOCS stage 1)."""

    subscriber: str
    protocol: str
    time: float
    rule: str
    server: str
    server_port: int
    transport: str


@dataclass(slots=True)
class Judgement:
    """The engine's per-flow record, kept on the flow (``FlowState.judgement``)."""

    flow: FlowState
    verdict: Verdict
    budget: int
    payload_packets: int = 0
    classification: Classification | None = None
    hello_in_one_segment: bool = True
    # enforcement
    started_at_packets: int = 0
    """flow.packets when the current verdict was first enforced (DROP_AFTER counts from it)."""
    tokens: list[float] = field(default_factory=lambda: [0.0, 0.0])
    refilled: list[float] = field(default_factory=lambda: [0.0, 0.0])
    server_payload: int = 0
    reset_sent: bool = False
    rng: random.Random | None = None
    detected: bool = False
    desync: FlowMarks | None = None
    """The desync detector's record of the flow's client packets (desync.py)."""


class TspuEngine:
    """One TSPU box: a flow table, a classifier and the policy of one profile over one registry."""

    def __init__(
        self,
        profile: Profile,
        registry: Registry,
        subscriber_nets: Sequence[Network],
        time_scale: float = 1.0,
        *,
        tor_relays: frozenset[str] = frozenset(),
    ) -> None:
        spec = profile.spec
        self.profile = profile
        self.registry = registry
        self.time_scale = time_scale
        self.host_blocks: dict[bytes, list[HostBlock]] = {}
        self.ctx = Context(registry, profile, time_scale, self.host_blocks)
        self.table = FlowTable(tuple(subscriber_nets), spec.state.idle_timeout_s.value * time_scale)
        joined = spec.inspection.quic_join_initials
        self.classifier = Classifier(
            spec.inspection.reassembly.value, tor_relays, profile.budget.hi,
            join_quic_initials=joined.value if joined is not None else None,
        )  # fmt: skip
        self.detections: deque[DetectEvent] = deque(maxlen=DETECTIONS_KEPT)
        """Detect events not yet drained, oldest first (bounded: the oldest fall off)."""
        cache = spec.inspection.fragment_cache
        self.fragments = (
            FragmentCache(cache.value, DEFAULT_TIMEOUT_S * time_scale)
            if cache is not None
            else None
        )
        """The IP fragment cache of §2.4, when the profile has ``inspection.fragment_cache``."""
        self.server_blocks = ServerBlocks()
        """IP:port blocks scheduled by ``detect`` rules with ``block_after_s`` (serverblocks.py)."""
        insp = spec.inspection
        self._udp_budget = insp.udp_budget_packets.value if insp.udp_budget_packets else None
        self._opaque = (
            insp.opaque_first_packet_min_bytes.value if insp.opaque_first_packet_min_bytes else None
        )
        self._rearm = bool(insp.rearm_after_non_matching and insp.rearm_after_non_matching.value)
        self._remote_syn = bool(insp.remote_syn_unblocks and insp.remote_syn_unblocks.value)
        self._survives = spec.state.survives_fin_rst.value
        self.desync = DesyncDetector(spec.desync, time_scale) if spec.desync else None
        self._none_rules = any(
            r.when.reassembly is not None and r.when.reassembly.value == "none"
            for r in profile.rules
        )

    # --- public -----------------------------------------------------------------------------

    def process(
        self,
        frame: bytes,
        now: float,
        *,
        from_subscriber_side: bool | None = None,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> Decision:
        """Judge one frame seen at ``now`` (seconds). ``from_subscriber_side``: the port it came in
        on, when the caller knows it (the live switch); else subscriber_nets decide."""
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            return Decision(None, _NOT_IP, None, None)
        ident = ipv4_ident(frame, linktype, pkt) if self.desync is not None else -1
        d = self.process_packet(pkt, now, from_subscriber_side=from_subscriber_side, ip_id=ident)
        if self.fragments is not None and pkt.frag_id >= 0 and d.fate is Fate.FORWARD:
            held = self.fragments.add(frame, now, linktype)
            if held.held is Held.DROPPED:
                return replace(d, fate=Fate.DROP)
            if held.held is not Held.PASS:
                return replace(d, held=True, released=held.frames)
        return d

    def process_packet(
        self,
        pkt: Packet,
        now: float,
        *,
        from_subscriber_side: bool | None = None,
        ip_id: int = -1,
    ) -> Decision:
        """``process`` for an already decoded packet (``ip_id``: its IPv4 ID, for desync
        detection; -1: unknown)."""
        flow = self.table.lookup(pkt, now)
        judged = flow.judgement
        if self.server_blocks:
            landed = self._server_blocked(flow, pkt, now, from_subscriber_side)
            if landed is not None:
                return landed
        if judged is not None and judged.verdict.final:
            return Decision(
                flow, judged.verdict, judged.classification, pkt, self._enforce(judged, pkt, now)
            )
        if judged is None:
            judged = self._new(flow, pkt, now, from_subscriber_side)
            if judged.verdict.final:
                fate = self._enforce(judged, pkt, now)
                return Decision(flow, judged.verdict, None, pkt, fate, first_final=True)
        if self.desync is not None:
            caught, judged.desync = self.desync.judge(flow, judged.desync, pkt, ip_id, now)
            if caught is not None:
                return self._settle(judged, pkt, now, caught)
        return self._inspect(judged, pkt, now)

    def set_registry(self, registry: Registry) -> None:
        """Judge new flows against another registry version; flows already judged keep their
        verdicts (a registry push does not re-judge open connections)."""
        self.registry = registry
        self.ctx = Context(registry, self.profile, self.time_scale, self.host_blocks)

    def flows(self) -> Iterable[FlowState]:
        return self.table.flows()

    def verdict_of(self, flow: FlowState) -> Verdict | None:
        return flow.judgement.verdict if flow.judgement is not None else None

    def classification_of(self, flow: FlowState) -> Classification | None:
        return flow.judgement.classification if flow.judgement is not None else None

    def drain_detections(self) -> list[DetectEvent]:
        """The detect events since the last drain, oldest first."""
        out = list(self.detections)
        self.detections.clear()
        return out

    # --- new flows --------------------------------------------------------------------------

    def _new(
        self,
        flow: FlowState,
        pkt: Packet,
        now: float,
        from_subscriber_side: bool | None,
    ) -> Judgement:
        previous = self._replaced(flow)
        if from_subscriber_side is not None and flow.packets == 1:
            sender_is_client = pkt.src == flow.client_addr and pkt.sport == flow.client_port
            flow.initiated_inside = from_subscriber_side == sender_is_client
        budget = self.profile.budget.pick(self.profile.spec.seed.value, "budget", flow.key)
        if flow.proto == PROTO_UDP and self._udp_budget is not None:
            budget = self._udp_budget
        if (
            previous is not None
            and self._survives
            and previous.verdict.final
            and not isinstance(previous.verdict, Allow)
            and now - previous.flow.last_seen <= self.table.idle_timeout
        ):
            # FIN/RST do not clear the state (CP-THR §3): the new connection inherits it.
            carried = Judgement(
                flow, previous.verdict, budget, classification=previous.classification
            )
            flow.judgement = carried
            return carried
        verdict = evaluate(flow, None, self.ctx, now, Observation(packet=pkt))
        judged = Judgement(flow, verdict, budget, started_at_packets=flow.packets - 1)
        judged.tokens = [_burst(verdict)] * 2
        judged.refilled = [now, now]
        flow.judgement = judged
        if verdict.final and isinstance(verdict, Detect):
            judged.detected = True
            self._log_detection(judged, now)
        return judged

    def _replaced(self, flow: FlowState) -> Judgement | None:
        """The judgement of the connection `flow` just replaced on its 5-tuple (port reuse after
        FIN/RST), if any; the table's expired list is drained here (its flows take their state
        with them)."""
        expired = self.table.expired
        previous = None
        for old in reversed(expired):
            if old.key == flow.key and old is not flow:
                previous = old.judgement
                break
        expired.clear()
        return previous

    # --- inspection -------------------------------------------------------------------------

    def _inspect(self, judged: Judgement, pkt: Packet, now: float) -> Decision:
        flow = judged.flow
        has_payload = bool(pkt.payload) and pkt.has_l4
        if has_payload:
            judged.payload_packets += 1
        if (
            self._remote_syn
            and pkt.proto == PROTO_TCP
            and not flow.from_client
            and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        ):
            syn_rule = self.profile.spec.inspection.remote_syn_unblocks
            assert syn_rule is not None
            reason = (
                f"SYN from the server side (split handshake) ends inspection ({syn_rule.source})"
            )
            return self._settle(judged, pkt, now, Allow(True, reason, None))
        if self._opaque is not None and has_payload and judged.payload_packets == 1:
            data = pkt.payload
            opaque = not (
                looks_like_tls_record(data) or looks_like_http_request(data) or _socks(data)
            )
            if opaque and len(data) >= self._opaque:
                size_rule = self.profile.spec.inspection.opaque_first_packet_min_bytes
                assert size_rule is not None
                reason = (
                    f"first payload packet of {len(data)} B is not TLS, HTTP or SOCKS: "
                    f"inspection ends ({size_rule.source})"
                )
                return self._settle(judged, pkt, now, Allow(True, reason, None))
        classification = self.classifier.observe(pkt, flow, now)
        fresh = classification is not None and judged.classification is not classification
        if fresh:
            judged.classification = classification
            if self._none_rules and pkt.proto == PROTO_TCP:
                judged.hello_in_one_segment = _whole_in_segment(pkt.payload)
        spent = judged.payload_packets >= judged.budget
        over = spent or (classification is not None and not self._rearm)
        obs = Observation(pkt, judged.payload_packets, over, judged.hello_in_one_segment)
        verdict = evaluate(flow, judged.classification, self.ctx, now, obs)
        if (
            self._rearm
            and fresh
            and not spent
            and isinstance(verdict, Allow)
            and verdict.rule is None
            and judged.classification is not None
        ):
            # Nothing matched this record; the 2021 throttler keeps looking (CP-THR §3).
            _rearm_classifier(flow)
            judged.classification = None
            judged.hello_in_one_segment = True
            verdict = Allow(
                False, f"inspecting: {judged.payload_packets} of {judged.budget} "
                "payload packets seen, no rule matched yet", None,
            )  # fmt: skip
        elif not verdict.final and spent:
            verdict = evaluate(
                flow, judged.classification, self.ctx, now,
                Observation(pkt, judged.payload_packets, True, judged.hello_in_one_segment),
            )  # fmt: skip
        return self._settle(judged, pkt, now, verdict)

    def _settle(self, judged: Judgement, pkt: Packet, now: float, verdict: Verdict) -> Decision:
        previous = judged.verdict
        if type(verdict) is not type(previous) or verdict.rule != previous.rule:
            judged.started_at_packets = judged.flow.packets - 1
            judged.tokens = [_burst(verdict)] * 2
            judged.refilled = [now, now]
        judged.verdict = verdict
        if verdict.final and isinstance(verdict, Detect) and not judged.detected:
            judged.detected = True
            self._log_detection(judged, now)
        fate = self._enforce(judged, pkt, now)
        return Decision(
            judged.flow, verdict, judged.classification, pkt, fate, first_final=verdict.final
        )

    # --- enforcement ------------------------------------------------------------------------

    def _enforce(self, judged: Judgement, pkt: Packet, now: float) -> Fate:
        v = judged.verdict
        flow = judged.flow
        from_client = flow.from_client
        if not from_client and pkt.has_l4:
            judged.server_payload += len(pkt.payload)
        if isinstance(v, _PASSING):
            return Fate.FORWARD
        if isinstance(v, Drop):
            return Fate.DROP
        if isinstance(v, DropAfter):
            passed = flow.packets - judged.started_at_packets - 1  # packets after the trigger
            return Fate.FORWARD if passed <= v.after_packets else Fate.DROP
        if isinstance(v, Reset):
            return self._reset(judged, v, from_client)
        if isinstance(v, HostBlockVerdict):
            self._host_block(judged, v, now)
            return Fate.FORWARD
        if isinstance(v, FreezeAfterBytes):
            frozen = not from_client and judged.server_payload > v.freeze_bytes
            if frozen and v.reset and not judged.reset_sent:
                judged.reset_sent = True  # the packet over the limit becomes a RST (§10.2)
                return Fate.RESET
            return Fate.DROP if frozen else Fate.FORWARD
        if not _in_direction(v.direction, from_client):
            return Fate.FORWARD
        if isinstance(v, Police):
            return self._police(judged, v, pkt, now, 0 if from_client else 1)
        if judged.rng is None:  # RandomLoss
            judged.rng = random.Random(_flow_seed(self.profile.spec.seed.value, flow))
        return Fate.DROP if judged.rng.random() < v.loss else Fate.FORWARD

    def _reset(self, judged: Judgement, v: Reset, from_client: bool) -> Fate:
        if judged.reset_sent:
            return Fate.DROP  # the connection is over for the client; leftovers go nowhere
        if v.reset_mode == "rewrite":
            # SNI-I: the trigger passes; the next packet towards the reset side becomes the RST.
            towards_client = not from_client
            target = v.reset_side
            if judged.flow.packets - judged.started_at_packets <= 1:
                return Fate.FORWARD
            if target == "both" or (target == "client") == towards_client:
                judged.reset_sent = True
                return Fate.RESET
            return Fate.FORWARD
        judged.reset_sent = True  # inject: the trigger is answered by RSTs in its place
        return Fate.RESET

    def _police(self, judged: Judgement, v: Police, pkt: Packet, now: float, d: int) -> Fate:
        rate = v.rate_bps / 8.0
        burst = float(v.burst_bytes)
        tokens = min(burst, judged.tokens[d] + (now - judged.refilled[d]) * rate)
        judged.refilled[d] = now
        if tokens >= pkt.ip_len:
            judged.tokens[d] = tokens - pkt.ip_len
            return Fate.FORWARD
        judged.tokens[d] = tokens
        return Fate.DROP

    def _host_block(self, judged: Judgement, v: HostBlockVerdict, now: float) -> None:
        flow = judged.flow
        blocks = self.host_blocks.setdefault(flow.client_addr, [])
        until = now + v.duration_s
        rule = v.rule or ""
        block = HostBlock(v.target_set, v.target_ports, v.target_transport, until, rule, now)
        # Sending again renews the block (§5.8): replace the one of the same rule and target.
        blocks[:] = [b for b in blocks if (b.rule, b.target_set) != (rule, v.target_set)]
        blocks.append(block)

    def _server_blocked(
        self, flow: FlowState, pkt: Packet, now: float, from_subscriber_side: bool | None
    ) -> Decision | None:
        """A drop when the flow's server IP:port is on the blocklist a detection scheduled."""
        block = self.server_blocks.active((flow.server_addr, flow.server_port, flow.proto), now)
        if block is None:
            return None
        judged = flow.judgement or self._new(flow, pkt, now, from_subscriber_side)
        v = judged.verdict
        if not (isinstance(v, Drop) and v.final and v.rule == block.rule):
            v = Drop(
                True,
                f"IP:port block pushed back by the central system (§1 TSPU-DOCS [A]): "
                f"{block.protocol} detected at t={block.detected:g}, blocked from "
                f"t={block.since:g}",
                block.rule, scope="server-host", idle_timeout_s=self.ctx.profile.spec.state
                .idle_timeout_s.value * self.time_scale,
            )  # fmt: skip
        return self._settle(judged, pkt, now, v)

    def _log_detection(self, judged: Judgement, now: float) -> None:
        flow = judged.flow
        c = judged.classification
        verdict = judged.verdict
        if isinstance(verdict, Detect) and verdict.block_after_s is not None:
            key = (flow.server_addr, flow.server_port, flow.proto)
            protocol = str(c.protocol) if c is not None else "unknown"
            self.server_blocks.schedule(
                key, now, verdict.block_after_s, verdict.rule or "", protocol
            )
        self.detections.append(
            DetectEvent(
                subscriber=text(flow.client_addr),
                protocol=str(c.protocol) if c is not None else "unknown",
                time=now,
                rule=judged.verdict.rule or "",
                server=text(flow.server_addr),
                server_port=flow.server_port,
                transport={PROTO_TCP: "tcp", PROTO_UDP: "udp"}.get(flow.proto, str(flow.proto)),
            )
        )


#: verdicts under which every packet passes (a tuple: `Allow | Detect` is rebuilt per call)
_PASSING = (Allow, Detect)


def _burst(verdict: Verdict) -> float:
    return float(verdict.burst_bytes) if isinstance(verdict, Police) else 0.0


def _in_direction(direction: str, from_client: bool) -> bool:
    if direction == "both":
        return True
    return (direction == "client-to-server") == from_client


def _flow_seed(seed: int, flow: FlowState) -> int:
    digest = hashlib.blake2b(f"{seed}|loss|{flow.key!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest)


def _socks(data: bytes) -> bool:
    """A SOCKS5 greeting (05, n, n methods) or a SOCKS4/4a CONNECT/BIND request (RFC 1928)."""
    if len(data) >= 3 and data[0] == 5 and len(data) == 2 + data[1]:
        return True
    return len(data) >= 9 and data[0] == 4 and data[1] in (1, 2) and data[-1] == 0


def _whole_in_segment(payload: bytes) -> bool:
    """The segment alone holds a ClientHello in its first record (what ``none`` mode sees)."""
    try:
        find_client_hello(payload, ReassemblyMode.NONE)
    except DecodeError:
        return False
    return True


def _rearm_classifier(flow: FlowState) -> None:
    """Forget the classifier's cached verdict and inspection state so it looks at the next packets
    afresh. Used only with ``reassembly: none``, where the inspection state holds no stream.
    (A ``Classifier.rearm(flow)`` in classify.py would own this; requested from its owner.)"""
    flow.classification = None
    flow.inspection = None


def engine_for(
    profile: Profile,
    registry: Registry | None = None,
    subscriber_nets: Sequence[Network] = (),
    time_scale: float = 1.0,
    sets: Mapping[str, Iterable[str]] | None = None,
) -> TspuEngine:
    """An engine with extra entries added to the profile's named sets (scenario lists)."""
    for name, entries in (sets or {}).items():
        profile = profile.with_set_entries(name, entries)
    return TspuEngine(profile, registry or Registry(), subscriber_nets, time_scale)
