"""The TSPU policy: (flow state, classification, registry, profile, time) -> verdict.

``decide`` is a pure function. It walks the profile's rules in order (STYLE.md 13: each rule is
one condition set and one action, documented in its YAML with its source) and returns the first
rule's verdict whose conditions hold. A condition can be *unknown* while the flow is still being
inspected (an SNI condition before the ClientHello has been read); a rule that matches after an
unknown one gives a *provisional* verdict (``final=False``): it is enforced on the packet at hand,
but the flow stays under inspection, because the earlier rule may still match (the hosting freeze
is provisional until the SNI allowlist has been checked, §5.8). When ``inspection_over`` is set
(budget spent, or the classification is final), unknown conditions count as false.

Asymmetry (CP-TSPU §2.3, CP-THR §3): a rule applies to inside-initiated flows only, unless it says
``initiator: any`` (IP mode drops everything to and from the address, §2.2) or the profile is not
``inside_initiated_only``. An outside-initiated flow therefore gets a final ALLOW at its first
packet unless an address rule catches it.

Host blocks (§5.8, UDP to a hosting range blocks HTTPS to another range for 10 minutes) are state
the engine keeps; they reach ``decide`` through ``Context.host_blocks`` with their expiry times,
so the function stays pure and its timers are testable with an explicit ``now``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tspulab.dpi.classify import Classification, Protocol
from tspulab.dpi.flow import FlowState
from tspulab.dpi.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet
from tspulab.dpi.profile import (
    REGISTRY,
    IntRange,
    Profile,
    QuicInitialRule,
    RuleSpec,
    WireGuardMessage,
    share_pick,
)
from tspulab.dpi.registry import Registry
from tspulab.dpi.verdict import (
    Action,
    Allow,
    Detect,
    Drop,
    DropAfter,
    FreezeAfterBytes,
    Police,
    RandomLoss,
    Reset,
    Verdict,
)
from tspulab.dpi.verdict import (
    HostBlock as HostBlockVerdict,
)

_TRANSPORTS = {"tcp": (PROTO_TCP,), "udp": (PROTO_UDP,), "icmp": (PROTO_ICMP, PROTO_ICMPV6)}


@dataclass(frozen=True, slots=True)
class HostBlock:
    """A subscriber blocked from a set of servers until ``until`` (scenario time)."""

    target_set: str
    ports: tuple[int, ...]
    transport: str | None
    until: float
    rule: str
    since: float


@dataclass(frozen=True, slots=True)
class Observation:
    """What the engine has seen of the flow, beyond the flow state and the classification."""

    packet: Packet | None = None
    """The packet being judged."""
    payload_packets: int = 0
    """Payload-carrying packets inspected so far, this one included."""
    inspection_over: bool = False
    """No more inspection will happen: unknown conditions are false."""
    hello_in_one_segment: bool = True
    """The ClientHello of the classification lay whole in the first TLS record of one segment (what
    a rule with ``reassembly: none`` can see when the profile reassembles)."""


@dataclass(frozen=True, slots=True)
class Context:
    """Everything ``decide`` reads besides the flow: the registry, the profile, timers."""

    registry: Registry
    profile: Profile
    time_scale: float = 1.0
    host_blocks: Mapping[bytes, Sequence[HostBlock]] | None = None
    """Active blocks per subscriber (packed address); expired ones are ignored."""

    def set_of(self, name: str) -> Registry:
        return self.registry if name == REGISTRY else self.profile.sets[name]


def decide(
    flow: FlowState,
    classification: Classification | None,
    registry: Registry,
    profile: Profile,
    now: float,
    *,
    observation: Observation | None = None,
    time_scale: float = 1.0,
    host_blocks: Mapping[bytes, Sequence[HostBlock]] | None = None,
) -> Verdict:
    """The verdict for ``flow`` as things stand at ``now`` (see the module docstring)."""
    ctx = Context(registry, profile, time_scale, host_blocks)
    return evaluate(flow, classification, ctx, now, observation or Observation())


def evaluate(
    flow: FlowState,
    classification: Classification | None,
    ctx: Context,
    now: float,
    obs: Observation,
) -> Verdict:
    """``decide`` with its fixed arguments bundled in a ``Context`` (what the engine calls)."""
    blocked = _host_blocked(flow, ctx, now)
    if blocked is not None:
        return blocked
    pending: RuleSpec | None = None
    for rule in ctx.profile.rules:
        if not _initiator_ok(rule, flow, ctx.profile):
            continue
        held, what = _conditions(rule, flow, classification, ctx, obs)
        if held is None:
            pending = pending or rule
            continue
        if held:
            return _verdict(rule, what, flow, ctx, final=pending is None)
    if pending is not None:
        return Allow(
            False, f"inspecting: rule {pending.id} not decided yet", None,
            idle_timeout_s=_idle(ctx),
        )  # fmt: skip
    if not flow.initiated_inside and ctx.profile.spec.inspection.inside_initiated_only.value:
        source = ctx.profile.spec.inspection.inside_initiated_only.source
        return Allow(
            True, f"outside-initiated flows are not judged ({source})", None,
            idle_timeout_s=_idle(ctx),
        )  # fmt: skip
    return Allow(True, "no rule matched", None, idle_timeout_s=_idle(ctx))


def _idle(ctx: Context) -> float:
    return ctx.profile.spec.state.idle_timeout_s.value * ctx.time_scale


def _initiator_ok(rule: RuleSpec, flow: FlowState, profile: Profile) -> bool:
    if rule.initiator is not None:
        return rule.initiator.value == "any" or flow.initiated_inside
    return flow.initiated_inside or not profile.spec.inspection.inside_initiated_only.value


def _host_blocked(flow: FlowState, ctx: Context, now: float) -> Verdict | None:
    if not ctx.host_blocks or not flow.initiated_inside:
        return None
    for block in ctx.host_blocks.get(flow.client_addr, ()):
        if block.until <= now:
            continue
        if block.ports and flow.server_port not in block.ports:
            continue
        if block.transport is not None and flow.proto not in _TRANSPORTS[block.transport]:
            continue
        entry = ctx.set_of(block.target_set).contains_address(flow.server_addr)
        if entry is None:
            continue
        return Drop(
            True,
            f"host block by rule {block.rule} since t={block.since:g}: {text(flow.server_addr)} "
            f"in set {block.target_set} ({entry.network}) until t={block.until:g}",
            block.rule, scope="client-host", hard_timeout_s=block.until - now,
        )  # fmt: skip
    return None


def _conditions(
    rule: RuleSpec,
    flow: FlowState,
    c: Classification | None,
    ctx: Context,
    obs: Observation,
) -> tuple[bool | None, list[str]]:
    """Whether every condition of ``rule`` holds: True, False, or None (not known yet); and a
    description of what matched, for the verdict's reason."""
    w = rule.when
    what: list[str] = []
    unknown = False
    if w.transport is not None and flow.proto not in _TRANSPORTS[w.transport.value]:
        return False, what
    if w.server_ports is not None and flow.server_port not in w.server_ports.value:
        return False, what
    if w.address_in is not None:
        entry = ctx.set_of(w.address_in).contains_address(flow.server_addr)
        addr = flow.server_addr
        if entry is None:
            entry = ctx.set_of(w.address_in).contains_address(flow.client_addr)
            addr = flow.client_addr
        if entry is None:
            return False, what
        what.append(f"{text(addr)} in {w.address_in} ({entry})")
    if w.server_in is not None:
        entry = ctx.set_of(w.server_in).contains_address(flow.server_addr)
        if entry is None:
            return False, what
        what.append(f"server {text(flow.server_addr)} in {w.server_in} ({entry.network})")
    if (
        w.server_not_in is not None
        and ctx.set_of(w.server_not_in).contains_address(flow.server_addr) is not None
    ):
        return False, what
    if w.payload_packet is not None:
        pkt = obs.packet
        has_payload = pkt is not None and bool(pkt.payload)
        if has_payload != w.payload_packet.value:
            if has_payload or obs.inspection_over:
                return False, what
            unknown = True  # a later packet of the flow may carry payload
    if w.quic_initial is not None:
        if obs.payload_packets == 0 and not obs.inspection_over:
            unknown = True  # the first datagram with payload has not been seen yet
        elif not _quic_initial(w.quic_initial, flow, obs, what):
            return False, what
    needs_class = (
        w.protocols is not None
        or w.sni_in is not None
        or w.sni_not_in is not None
        or w.ech is not None
        or w.ja4_in is not None
        or w.wireguard_messages is not None
    )
    if needs_class and c is None:
        unknown = True
    elif c is not None:
        if w.protocols is not None:
            if c.protocol.value not in w.protocols.value:
                return False, what
            what.append(f"protocol {c.protocol} ({c.detail})")
        if w.ech is not None:
            if c.has_ech != w.ech.value:
                return False, what
            what.append("ECH extension" if c.has_ech else "no ECH")
        if w.sni_in is not None or w.sni_not_in is not None:
            held = _sni(rule, c, ctx, obs, what)
            if not held:
                return False, what
        if w.wireguard_messages is not None and c.protocol is Protocol.WIREGUARD:
            message = wireguard_message(c.detail)
            if message not in w.wireguard_messages.value:
                return False, what
            what.append(f"wireguard {message}")
        if w.ja4_in is not None:
            hit = ctx.profile.ja4_sets[w.ja4_in].match(c.ja4)
            if hit is None:
                return False, what
            what.append(f"JA4 {c.ja4} matched {hit} ({w.ja4_in})")
    if unknown:
        return (False if obs.inspection_over else None), what
    return True, what


def _quic_initial(q: QuicInitialRule, flow: FlowState, obs: Observation, what: list[str]) -> bool:
    """The first client datagram with payload is the March-2022 QUIC trigger (§5.3)."""
    pkt = obs.packet
    if pkt is None or not flow.from_client or obs.payload_packets != 1 or pkt.proto != PROTO_UDP:
        return False
    payload = pkt.payload
    if (
        pkt.dport != q.port.value
        or len(payload) < q.min_bytes.value
        or payload[1:5] != q.version.value.to_bytes(4, "big")
    ):
        return False
    what.append(f"first datagram {len(payload)} B to port {pkt.dport}, QUIC v{q.version.value}")
    return True


def _sni(
    rule: RuleSpec, c: Classification, ctx: Context, obs: Observation, what: list[str]
) -> bool:
    w = rule.when
    if c.sni is None:
        return False
    if w.reassembly is not None and w.reassembly.value == "none" and not obs.hello_in_one_segment:
        return False  # this module does not reassemble; the ClientHello was split
    spec = ctx.profile.spec.inspection
    fold, strip = spec.fold_case.value, spec.strip_trailing_dot.value
    if w.sni_in is not None:
        hit = ctx.set_of(w.sni_in).match_domain(c.sni, fold_case=fold, strip_trailing_dot=strip)
        if hit is None:
            return False
        what.append(f"SNI {c.sni} matched {hit.kind} rule {hit.pattern} ({w.sni_in}: {hit.source})")
    if w.sni_not_in is not None:
        other = ctx.set_of(w.sni_not_in)
        if other.match_domain(c.sni, fold_case=fold, strip_trailing_dot=strip) is not None:
            return False
        what.append(f"SNI {c.sni} not in {w.sni_not_in}")
    return True


def _verdict(
    rule: RuleSpec, what: list[str], flow: FlowState, ctx: Context, final: bool
) -> Verdict:
    a = rule.action
    reason = f"{rule.title} ({rule.source}): " + ("; ".join(what) or "matched")
    idle = _idle(ctx)
    kind = a.kind
    if kind is Action.ALLOW:
        return Allow(final, reason, rule.id, idle_timeout_s=idle)
    if kind is Action.DETECT:
        if a.block_after_s is None:
            return Detect(final, reason, rule.id, idle_timeout_s=idle)
        after = (
            IntRange.of(a.block_after_s.value).pick(ctx.profile.spec.seed.value, rule.id, flow.key)
            * ctx.time_scale
        )
        # The switch rule lives until the block lands, then the flow climbs to be dropped.
        return Detect(
            final, f"{reason}; server blocked {after:g} s after detection", rule.id,
            idle_timeout_s=idle, hard_timeout_s=after, block_after_s=after,
        )  # fmt: skip
    if kind is Action.DROP:
        return Drop(final, reason, rule.id, idle_timeout_s=idle)
    # the profile loader guarantees each action's parameters (profile._ACTION_PARAMS)
    if kind is Action.RESET:
        assert a.reset_side is not None and a.reset_mode is not None
        return Reset(
            final, reason, rule.id, idle_timeout_s=idle,
            reset_side=a.reset_side.value, reset_mode=a.reset_mode.value,
        )  # fmt: skip
    if kind is Action.DROP_AFTER:
        assert a.after_packets is not None
        after = IntRange.of(a.after_packets.value).pick(
            ctx.profile.spec.seed.value, rule.id, flow.key
        )
        return DropAfter(final, reason, rule.id, idle_timeout_s=idle, after_packets=after)
    direction = a.direction.value if a.direction else "both"
    if kind is Action.POLICE:
        assert a.rate_bps is not None and a.burst_bytes is not None
        return Police(
            final, reason, rule.id, idle_timeout_s=idle, rate_bps=a.rate_bps.value,
            burst_bytes=a.burst_bytes.value, direction=direction,
        )  # fmt: skip
    if kind is Action.RANDOM_LOSS:
        assert a.loss is not None
        return RandomLoss(
            final, reason, rule.id, idle_timeout_s=idle, loss=a.loss.value, direction=direction
        )
    if kind is Action.FREEZE_AFTER_BYTES:
        assert a.freeze_bytes is not None
        reset = None
        if a.reset_share is not None and flow.proto == PROTO_TCP:
            reset = share_pick(a.reset_share.value, ctx.profile.spec.seed.value, rule.id, flow.key)
        return FreezeAfterBytes(
            final, reason, rule.id, idle_timeout_s=idle, freeze_bytes=a.freeze_bytes.value,
            reset=reset,
        )  # fmt: skip
    assert kind is Action.HOST_BLOCK and a.duration_s is not None and a.target_set is not None
    return HostBlockVerdict(
        final, reason, rule.id, idle_timeout_s=idle,
        duration_s=a.duration_s.value * ctx.time_scale, target_set=a.target_set,
        scope=a.scope.value if a.scope else "client-host",
        target_ports=tuple(a.target_ports.value) if a.target_ports else (),
        target_transport=a.target_transport.value if a.target_transport else None,
    )  # fmt: skip


_WIREGUARD_MESSAGES: tuple[tuple[str, WireGuardMessage], ...] = (
    ("wg initiation", "initiation"), ("wg response", "response"),
    ("wg cookie reply", "cookie-reply"), ("wg transport data", "transport-data"),
)  # fmt: skip


def wireguard_message(detail: str) -> WireGuardMessage | None:
    """The WireGuard message a classification was decided by, from its detail (the fingerprint's
    ``wg <type>``, fingerprints/wireguard.py)."""
    for suffix, message in _WIREGUARD_MESSAGES:
        if detail.endswith(suffix):
            return message
    return None


def text(addr: bytes) -> str:
    """A packed address as text."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
