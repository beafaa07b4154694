"""Issue 15's profile fixes and 2025 additions: each test names its fact of tspu-behaviour.md.

hosting-freeze-2025's scope (mismatch 6) and the 2025-06 account (hosting-freeze-h3-2025),
WireGuard's matched message (mismatch 7, both variants), vpn-detect-2025's fully-encrypted
citation (mismatch 8), and the delayed IP:port block of the two-stage cycle
(vpn-verify-block-2025, §1 [A]) driven by explicit times (the engine reads no clock).
"""

from __future__ import annotations

import dataclasses

import pytest
from scapy.contrib.wireguard import Wireguard, WireguardInitiation, WireguardTransport

from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tests.unit.dpi.test_policy_later import OPENVPN_RESET, quic_initial
from tspulab.dpi.profile import Profile, load_profile
from tspulab.dpi.verdict import Action, Fate

HETZNER = "88.198.10.20"
WG_INIT = bytes(Wireguard() / WireguardInitiation(sender_index=7))
WG_DATA = bytes(Wireguard(message_type=4) / WireguardTransport(receiver_index=9, counter=5)
                / bytes(64))  # fmt: skip


def _download(c: Conn, start: float, chunks: int, size: int = 1400) -> list[Fate]:
    return [c.data(start + i / 1000, b"d" * size, from_client=False).fate for i in range(chunks)]


# --- hosting-freeze-2025: as the sheet says (mismatch 6) ------------------------------------


def test_hosting_freeze_2025_is_tcp_only_and_never_resets() -> None:
    """§5.8 N4P-#490, §9.18: a TCP flow freezes silently (no RST); QUIC to the same range is
    not part of that account."""
    profile = load_profile("hosting-freeze-2025")
    freeze = next(r for r in profile.rules if r.id == "hosting-freeze")
    assert freeze.when.transport is not None and freeze.when.transport.value == "tcp"
    assert freeze.action.reset_share is None
    for sport in range(41000, 41020):
        c = Conn(engine(profile), server=HETZNER, sport=sport)
        c.handshake(0.0)
        c.data(0.1, hello_record("my-vps.example"))
        assert Fate.RESET not in _download(c, 0.2, 20)
    q = Conn(engine(profile), server=HETZNER)
    q.udp(0.0, quic_initial("my-vps.example"))
    assert {q.udp(0.1 + i / 100, b"q" * 1200, from_client=False).fate for i in range(30)} == {
        Fate.FORWARD
    }


def test_hosting_freeze_2025_host_block_scope_is_marked_as_assumed() -> None:
    """§5.8 N4P-#417 comment: whose HTTPS the UDP-triggered filter blocks is not stated; the
    profile's client-host scope says it is assumed (it cited a fact the sheet lacks)."""
    rule = next(r for r in load_profile("hosting-freeze-2025").rules if r.id == "udp-host-block")
    assert rule.action.scope is not None and "not stated" in rule.action.scope.source


# --- hosting-freeze-h3-2025: the 2025-06-26 account [R] -------------------------------------


def test_h3_account_cuts_quic_after_16_kb_too() -> None:
    """§10.2 Cloudflare 2025-06-26 [R]: the 16 KB cut also hits HTTP/3."""
    c = Conn(engine("hosting-freeze-h3-2025"), server=HETZNER)
    d = c.udp(0.0, quic_initial("my-vps.example"))
    assert d.verdict.rule == "hosting-cut-h3" and d.fate is Fate.FORWARD
    fates = [c.udp(0.1 + i / 100, b"q" * 1200, from_client=False).fate for i in range(30)]
    assert fates.index(Fate.DROP) == 16384 // 1200 and set(fates[14:]) == {Fate.DROP}
    assert c.udp(1.0, b"c" * 50).fate is Fate.FORWARD  # the client's side passes
    allowed = Conn(engine("hosting-freeze-h3-2025"), server="104.16.1.1", sport=40001)
    allowed.udp(0.0, quic_initial("cloudflare.com"))
    assert {allowed.udp(0.1 + i / 100, b"q" * 1200, from_client=False).fate
            for i in range(30)} == {Fate.FORWARD}  # fmt: skip


def test_h3_account_sometimes_resets_tcp_at_the_cut() -> None:
    """§10.2 Cloudflare 2025-06-26 [R]: the cut sometimes comes with an injected reset: a
    per-flow pick (reproducible) of about the profile's share sends one RST to the client in place
    of the first packet over 16 KB, then drops; the other flows freeze silently."""
    profile = load_profile("hosting-freeze-h3-2025")
    outcomes = []
    for sport in range(42000, 42100):
        c = Conn(engine(profile), server=HETZNER, sport=sport)
        c.handshake(0.0)
        c.data(0.1, hello_record("my-vps.example"))
        fates = _download(c, 0.2, 16)
        cut = 16384 // 1400  # the packet that takes the count past 16 KB
        assert set(fates[:cut]) == {Fate.FORWARD}
        assert fates[cut] in (Fate.RESET, Fate.DROP) and set(fates[cut + 1 :]) == {Fate.DROP}
        outcomes.append(fates[cut] is Fate.RESET)
        again = Conn(engine(profile), server=HETZNER, sport=sport)
        again.handshake(0.0)
        again.data(0.1, hello_record("my-vps.example"))
        assert (_download(again, 0.2, 16)[cut] is Fate.RESET) is outcomes[-1]
    assert 35 <= sum(outcomes) <= 65


# --- vpn-protocols-2023: WireGuard's matched message, both variants (mismatch 7) -------------


def _with_wireguard_messages(name: str, messages: list[str]) -> Profile:
    base = load_profile(name)
    rules = []
    for rule in base.spec.rules:
        w = rule.when
        if w.wireguard_messages is not None:
            cited = w.wireguard_messages.model_copy(update={"value": messages})
            rule = rule.model_copy(
                update={"when": w.model_copy(update={"wireguard_messages": cited})}
            )
        rules.append(rule)
    return dataclasses.replace(base, spec=base.spec.model_copy(update={"rules": rules}))


@pytest.mark.parametrize(
    ("messages", "data_alone_blocked"),
    [(["initiation", "response"], False),
     (["initiation", "response", "cookie-reply", "transport-data"], True)],
    ids=["handshake (shipped assumption)", "data packet alone"],
)  # fmt: skip
def test_wireguard_matched_message_variants(messages: list[str], data_alone_blocked: bool) -> None:
    """§5.4, §8: which WireGuard field the TSPU matches is not measured. The handshake variant
    (community belief, shipped) blocks a tunnel from its 148-byte initiation; the data variant
    also blocks a flow the box first sees mid-tunnel, from a transport-data packet alone."""
    profile = _with_wireguard_messages("vpn-protocols-2023", messages)
    c = Conn(engine(profile), dport=51820)
    d = c.udp(0.0, WG_INIT)
    assert d.fate is Fate.DROP and "wireguard initiation" in d.verdict.reason
    mid = Conn(engine(profile), dport=51820, sport=40001)
    d = mid.udp(0.0, WG_DATA)
    assert d.verdict.final and (d.fate is Fate.DROP) is data_alone_blocked
    assert (mid.udp(0.1, WG_DATA, from_client=False).fate is Fate.DROP) is data_alone_blocked
    # OpenVPN is not affected by the WireGuard condition.
    assert Conn(engine(profile), dport=1194, sport=40002).udp(0.0, OPENVPN_RESET).fate is Fate.DROP


def test_vpn_protocols_2023_ships_the_handshake_assumption_marked() -> None:
    rule = load_profile("vpn-protocols-2023").rules[0]
    cited = rule.when.wireguard_messages
    assert cited is not None and cited.value == ["initiation", "response"]
    assert "not measured" in cited.source


# --- vpn-detect-2025: fully-encrypted is the GFW rule, and says so (mismatch 8) ---------------


def test_vpn_detect_2025_cites_the_gfw_paper_for_fully_encrypted() -> None:
    """§5.5 N4P-#363 reports a different TSPU pattern (>= 3 client packets of >= 411 B, then the
    server); the classifier's fully-encrypted rule is Wu et al. (USENIX Security 2023)."""
    profile = load_profile("vpn-detect-2025")
    facts = " ".join(f.fact for f in profile.spec.facts)
    assert "Wu et al." in facts and "USENIX Security 2023" in facts
    assert "not §5.5's pattern" in profile.rules[0].when.protocols.source  # type: ignore[union-attr]
    assert any("411" in n.fact for n in profile.spec.not_modelled)


# --- the two-stage cycle: detect now, block the IP:port 5-15 minutes later (§1 [A]) -----------


def test_detected_server_is_blocked_for_everyone_after_the_delay() -> None:
    """§1 TSPU-DOCS [A], §10.2 [press]: the recognised flow passes and is logged; 5-15 minutes
    later (a per-flow pick) the server's IP:port is blocked, for the detected flow and for any
    other subscriber; other ports of the server and other servers are not."""
    e = engine("vpn-verify-block-2025")
    c = Conn(e, dport=51820)
    d = c.udp(100.0, WG_INIT)
    assert d.verdict.action is Action.DETECT and d.fate is Fate.FORWARD
    delay = d.verdict.block_after_s
    assert delay is not None and 300 <= delay <= 900 and d.verdict.hard_timeout_s == delay
    [event] = e.drain_detections()
    assert (event.protocol, event.time) == ("wireguard", 100.0)
    assert c.udp(100.0 + delay - 0.5, b"x" * 64).fate is Fate.FORWARD
    late = c.udp(100.0 + delay, b"x" * 64)
    assert (
        late.fate is Fate.DROP and late.verdict.final and "detected at t=100" in late.verdict.reason
    )
    assert c.udp(100.0 + delay + 1, b"y" * 64, from_client=False).fate is Fate.DROP
    other = Conn(e, client="10.0.0.9", sport=50000, dport=51820)
    assert other.udp(100.0 + delay + 5, bytes(40)).fate is Fate.DROP
    assert Conn(e, dport=51821).udp(100.0 + delay + 5, WG_INIT).fate is Fate.FORWARD
    assert Conn(e, server="93.184.216.35", dport=51820).udp(100.0 + delay + 5, bytes(40)).fate \
        is Fate.FORWARD  # fmt: skip


def test_block_delay_scales_with_time_and_is_reproducible() -> None:
    """§1 [A] 5-15 minutes, compressed by the scenario's time scale like every profile timer."""
    picks = set()
    for _ in range(2):
        d = Conn(engine("vpn-verify-block-2025", time_scale=0.01), dport=51820).udp(0.0, WG_INIT)
        picks.add(d.verdict.block_after_s)
    [pick] = picks
    assert pick is not None and 3.0 <= pick <= 9.0


def test_new_action_parameters_are_checked() -> None:
    """reset_share is a probability and a freeze-after-bytes parameter; block_after_s belongs to
    detect; both cite their source like every parameter."""
    from tspulab.dpi.profile import PROFILES_DIR, ProfileError, load_profile_text

    text = (PROFILES_DIR / "hosting-freeze-h3-2025.yaml").read_text()
    with pytest.raises(ProfileError, match=r"reset_share: a probability is in \[0, 1\]"):
        load_profile_text(text.replace("reset_share: {value: 0.5", "reset_share: {value: 1.5"))
    text = (PROFILES_DIR / "vpn-verify-block-2025.yaml").read_text()
    bad = text.replace("      kind: detect\n", "      kind: drop\n")
    with pytest.raises(ProfileError, match="'block_after_s' is not a drop parameter"):
        load_profile_text(bad)
    with pytest.raises(ProfileError, match="need 0 <= lo <= hi"):
        load_profile_text(text.replace("value: [300, 900]", "value: [900, 300]"))


def test_wireguard_data_only_variant_blocks_a_fresh_tunnel_at_its_first_data_packet() -> None:
    """§5.4, §8, the third reading: a box that fingerprints transport-data packets only (type 4,
    reserved zero, 16-byte multiple) lets the handshake through and drops the tunnel at its first
    data packet; the engine keeps looking after a non-matching message
    (``rearm_after_non_matching``, within the inspection budget)."""
    from scapy.contrib.wireguard import WireguardResponse

    profile = _with_wireguard_messages("vpn-protocols-2023", ["transport-data"])
    insp = profile.spec.inspection
    rearm = insp.inside_initiated_only.model_copy(
        update={"value": True, "source": "§5.4, §8 (test variant)"}
    )
    insp = insp.model_copy(update={"rearm_after_non_matching": rearm})
    profile = dataclasses.replace(
        profile, spec=profile.spec.model_copy(update={"inspection": insp})
    )
    c = Conn(engine(profile), dport=51820)
    assert c.udp(0.0, WG_INIT).fate is Fate.FORWARD
    response = bytes(Wireguard() / WireguardResponse(sender_index=9, receiver_index=7))
    assert c.udp(0.05, response, from_client=False).fate is Fate.FORWARD
    d = c.udp(0.1, WG_DATA)
    assert d.fate is Fate.DROP and "wireguard transport-data" in d.verdict.reason
    assert c.udp(0.2, WG_DATA, from_client=False).fate is Fate.DROP
