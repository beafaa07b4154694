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
- the tunnelled-HTTPS size pattern (tunnelled_https.py, the profile's ``tunnelled_https``, §5.5):
  on a flow the classifier found nothing plain in, the first payload packets' sizes and directions
  give it the class ``tunnelled-https``; the flow stays under inspection until the pattern is
  decided (at most ``client_packets + 1`` payload packets when the client waits for the server);
- the hooks of engine_hooks.py: IP fragments (§2.4), desync detection (§10.2 [A]) and the IP:port
  blocks a detection schedules (§1 [A]).

The enforcement of a verdict on each packet is enforce.py; the per-flow record and the per-frame
answer are judgement.py.

``time_scale`` multiplies every profile timer (flow idle expiry, host-block durations) so a
scenario can compress time: with ``time_scale=0.01`` the 10-minute idle expiry of the Twitter
throttler takes 6 s of scenario time. Rates (police bits per second) and byte counts are not
scaled. ``now`` is always an argument; nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from tspulab.dpi.classify import Classification, Classifier
from tspulab.dpi.enforce import Enforcer, burst
from tspulab.dpi.engine_hooks import EngineHooks
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.flow import FlowState, FlowTable, Network
from tspulab.dpi.http import looks_like_http_request
from tspulab.dpi.judgement import Decision, DetectEvent, Judgement
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
from tspulab.dpi.tunnelled_https import SizePattern, TunnelledHttps
from tspulab.dpi.verdict import Allow, Detect, Verdict

__all__ = ["DETECTIONS_KEPT", "Decision", "DetectEvent", "Judgement", "TspuEngine", "engine_for"]

_NOT_IP = Allow(True, "not decodable as IP: forwarded", None)
#: detect events kept until drained (a live box drains them every packet-in)
DETECTIONS_KEPT = 10_000


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
        self.hooks = EngineHooks(profile, time_scale)
        """IP fragments, desync detection, delayed server blocks (engine_hooks.py)."""
        self.enforcer = Enforcer(spec.seed.value, self.host_blocks)
        sizes = spec.tunnelled_https
        self.tunnelled_https = (
            TunnelledHttps(sizes.client_packets.value, sizes.min_bytes.value) if sizes else None
        )
        """The size pattern of §5.5 (tunnelled_https.py), when the profile has one."""
        insp = spec.inspection
        self._udp_budget = insp.udp_budget_packets.value if insp.udp_budget_packets else None
        self._opaque = (
            insp.opaque_first_packet_min_bytes.value if insp.opaque_first_packet_min_bytes else None
        )
        self._rearm = bool(insp.rearm_after_non_matching and insp.rearm_after_non_matching.value)
        self._remote_syn = bool(insp.remote_syn_unblocks and insp.remote_syn_unblocks.value)
        self._survives = spec.state.survives_fin_rst.value
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
        hooks = self.hooks
        # The hooks' attributes are tested here, not in calls: most profiles use neither, and
        # this runs for every packet (the controller's packet-ins, a replay's every frame).
        ident = hooks.ip_ident(frame, linktype, pkt) if hooks.desync is not None else -1
        d = self.process_packet(pkt, now, from_subscriber_side=from_subscriber_side, ip_id=ident)
        if hooks.fragments is not None and pkt.frag_id >= 0:
            return hooks.hold_fragment(d, frame, now, linktype)
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
        hooks = self.hooks
        if hooks.server_blocks:
            held = judged.verdict if judged is not None else None
            landed = hooks.server_block_verdict(flow, held, now)
            if landed is not None:
                judged = judged or self._new(flow, pkt, now, from_subscriber_side)
                return self._settle(judged, pkt, now, landed)
        if judged is not None and judged.verdict.final:
            return Decision(
                flow, judged.verdict, judged.classification, pkt,
                self.enforcer.fate(judged, pkt, now),
            )  # fmt: skip
        if judged is None:
            judged = self._new(flow, pkt, now, from_subscriber_side)
            if judged.verdict.final:
                fate = self.enforcer.fate(judged, pkt, now)
                return Decision(flow, judged.verdict, None, pkt, fate, first_final=True)
        if hooks.desync is not None:
            caught = hooks.desync_verdict(judged, pkt, ip_id, now)
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
        if (
            self.tunnelled_https is not None
            and pkt.proto == PROTO_TCP
            and flow.from_client
            and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        ):
            judged.sizes = SizePattern()  # the pattern reads a connection's first packets
        judged.tokens = [burst(verdict)] * 2
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
        if fresh and not (judged.sizes is not None and judged.sizes.matched):
            judged.classification = classification
            if self._none_rules and pkt.proto == PROTO_TCP:
                judged.hello_in_one_segment = _whole_in_segment(pkt.payload)
        spent = judged.payload_packets >= judged.budget
        seen, pending = judged.classification, False
        if judged.sizes is not None:
            seen, pending = self._size_pattern(judged, pkt, has_payload, spent)
        over = (spent or (classification is not None and not self._rearm)) and not pending
        obs = Observation(pkt, judged.payload_packets, over, judged.hello_in_one_segment)
        verdict = evaluate(flow, seen, self.ctx, now, obs)
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
                flow, seen, self.ctx, now,
                Observation(pkt, judged.payload_packets, True, judged.hello_in_one_segment),
            )  # fmt: skip
        return self._settle(judged, pkt, now, verdict)

    def _size_pattern(
        self, judged: Judgement, pkt: Packet, has_payload: bool, spent: bool
    ) -> tuple[Classification | None, bool]:
        """Run the tunnelled-HTTPS pattern (§5.5) on this packet: (the class the rules see, whether
        the pattern is still undecided). While undecided the class is withheld, so no rule
        settles the flow before its first packets' sizes have been read."""
        detector, sizes = self.tunnelled_https, judged.sizes
        assert detector is not None and sizes is not None
        current = judged.classification
        if sizes.matched:
            return current, False
        if not detector.applies_to(current):  # TLS, HTTP, SSH, ...: not a random-looking flow
            judged.sizes = None
            return current, False
        if has_payload and pkt.proto == PROTO_TCP:
            detector.observe(sizes, judged.flow.from_client, len(pkt.payload))
        if sizes.matched:
            judged.classification = detector.classification(sizes, judged.flow.packets)
            return judged.classification, False
        if sizes.matched is None and not spent:
            return None, True
        judged.sizes = None  # no match, or the budget ran out first
        return current, False

    def _settle(self, judged: Judgement, pkt: Packet, now: float, verdict: Verdict) -> Decision:
        previous = judged.verdict
        if type(verdict) is not type(previous) or verdict.rule != previous.rule:
            judged.started_at_packets = judged.flow.packets - 1
            judged.tokens = [burst(verdict)] * 2
            judged.refilled = [now, now]
        judged.verdict = verdict
        if verdict.final and isinstance(verdict, Detect) and not judged.detected:
            judged.detected = True
            self._log_detection(judged, now)
        fate = self.enforcer.fate(judged, pkt, now)
        return Decision(
            judged.flow, verdict, judged.classification, pkt, fate, first_final=verdict.final
        )

    # --- detections ------------------------------------------------------------------------

    def _log_detection(self, judged: Judgement, now: float) -> None:
        flow = judged.flow
        c = judged.classification
        self.hooks.schedule_server_block(judged, now)
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
