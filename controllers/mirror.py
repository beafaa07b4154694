"""Which packets of undecided flows may be forwarded at once and only *copied* to the controller.

Diverting a packet to the controller costs it a controller round trip (~1 ms here, far more
under load). That is needed only when the packet's fate can depend on the verdict: when some rule
of the profile could drop, reset, police or hold it. This module reads the profile and says, per
transport, which packets can never be touched, so the switch mirrors them (output to the
controller *and* go on to `forward`; the engine still sees them) instead of diverting them:

- TCP packets with SYN set (SYN, SYN/ACK), unless a rule can act on a packet without payload:
  every rule that is not an allow, a detect, or a registry address match (which the switch's
  registry table applies first) must need a protocol, an SNI, ECH, a QUIC Initial or payload;
- UDP, unless a rule that can act on UDP is not limited to server ports (`server_ports`, the
  QUIC Initial rule's port): those ports stay diverted, in both directions, all else is mirrored
  (DNS under tspu-2022: its only UDP rule is the QUIC one, on port 443);
- nothing at all when the profile has host blocks: a block drops a subscriber's new flows at their
  first packet, whatever it is.
"""

from __future__ import annotations

from tspulab.controllers.pipeline import Mirror
from tspulab.dpi.profile import Profile, RuleSpec
from tspulab.dpi.verdict import Action

_PAYLOAD_CONDITIONS = ("protocols", "sni_in", "sni_not_in", "ech", "quic_initial", "ja4_in")


NONE = Mirror()


def registry_address_rule(rule: RuleSpec) -> bool:
    """A plain `address_in: registry` rule: the switch's registry table applies it."""
    fields = rule.when.model_fields_set - {"address_in"}
    return not fields and rule.when.address_in in (None, "registry")


def profile_inspects(profile: Profile) -> bool:
    """False when every rule is a plain registry address match: the switch's registry table does
    it all and no packet needs to climb to the controller (the 2018 IP-blocking profile)."""
    return any(not registry_address_rule(rule) for rule in profile.rules)


def _harmless(rule: RuleSpec) -> bool:
    if rule.action.kind is Action.DETECT and rule.action.block_after_s is not None:
        return False  # the detection schedules a block of the server (serverblocks.py)
    return rule.action.kind in (Action.ALLOW, Action.DETECT) or registry_address_rule(rule)


def _needs_payload(rule: RuleSpec) -> bool:
    when = rule.when
    if any(getattr(when, name) is not None for name in _PAYLOAD_CONDITIONS):
        return True
    return when.payload_packet is not None and when.payload_packet.value


#: the transports the classifier can find each protocol on (a TLS ClientHello is TCP; on UDP
#: the classifier says QUIC or DTLS)
_PROTOCOL_TRANSPORTS: dict[str, set[str]] = {
    "tls": {"tcp"}, "http": {"tcp"}, "ssh": {"tcp"}, "tor": {"tcp"},
    "quic": {"udp"}, "dtls": {"udp"}, "wireguard": {"udp"},
}  # fmt: skip


def _transports(rule: RuleSpec) -> set[str]:
    """The transports a rule can match: its own `transport`, narrowed by its `protocols`."""
    t = rule.when.transport
    out: set[str] = {"tcp", "udp"} if t is None else {str(t.value)}
    if rule.when.protocols is not None:
        out &= set().union(
            *(_PROTOCOL_TRANSPORTS.get(p, {"tcp", "udp"}) for p in rule.when.protocols.value)
        )
    return out


def mirror_plan(profile: Profile) -> Mirror:
    if not profile_inspects(profile):
        return NONE
    rules = [r for r in profile.rules if not _harmless(r)]
    if any(r.action.kind is Action.HOST_BLOCK for r in rules):
        return NONE
    tcp_syn = not any("tcp" in _transports(r) and not _needs_payload(r) for r in rules)
    udp, ports = True, set()
    for rule in rules:
        if "udp" not in _transports(rule):
            continue
        when = rule.when
        limited = set(when.server_ports.value) if when.server_ports is not None else None
        if when.quic_initial is not None:
            port = {when.quic_initial.port.value}
            limited = port if limited is None else limited & port
        if limited is None:
            udp = False
            break
        ports |= limited
    return Mirror(tcp_syn, udp, tuple(sorted(ports)) if udp else ())
