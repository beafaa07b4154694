"""The tunnelled-HTTPS size pattern of §5.5 (tspulab/dpi/tunnelled_https.py) and tunnelled-https-2024.

§5.5 N4P-#363 [R]: from about 2024-04-25 Shadowsocks/VMess were blocked by the HTTPS exchange
inside the tunnel; one pattern: the client sends >= 3 packets of >= 411 B, then the server
answers. Blocking depended on the range and the port (DigitalOcean: 443 blocked, 5555 not).
§9.22 states it as a test. Flows here are scapy-crafted, payloads random bytes (what a fully
encrypted proxy sends).
"""

from __future__ import annotations

import random
import re

import pytest

from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tspulab.dpi.classify import Protocol
from tspulab.dpi.engine import Decision
from tspulab.dpi.profile import PROFILES_DIR, ProfileError, load_profile, load_profile_text
from tspulab.dpi.tunnelled_https import SizePattern, TunnelledHttps
from tspulab.dpi.verdict import Action, Fate

PROFILE = "tunnelled-https-2024"
DIGITALOCEAN = "46.101.7.9"  # in the profile's suspect-ranges (DigitalOcean example prefix)
ELSEWHERE = "93.184.216.34"  # not in it


def noise(n: int, seed: int = 1) -> bytes:
    return random.Random(seed * 7919 + n).randbytes(n)


def run(sizes: list[int]) -> SizePattern:
    """Feed signed sizes (client positive, server negative) through the §5.5 detector."""
    detector = TunnelledHttps(3, 411)
    state = SizePattern()
    for size in sizes:
        detector.observe(state, size > 0, abs(size))
    return state


@pytest.mark.parametrize(
    ("sizes", "matched"),
    [
        ([600, 1448, 700, -1200], True),  # the reported pattern
        ([411, 411, 411, -40], True),  # the threshold itself counts
        ([600, 1448, 700, 120, -1200], True),  # more client packets before the answer: still
        ([600, 1448, 700], None),  # the server has not answered yet
        ([600, -1200], False),  # the server answered after one large packet (curl through SS)
        ([600, 410, 700, -1200], False),  # one client packet under 411 B
        ([-300, 600, 600, 600, -100], False),  # the server spoke first
    ],
)
def test_the_pattern(sizes: list[int], matched: bool | None) -> None:
    assert run(sizes).matched is matched


def test_it_needs_at_most_client_packets_plus_one_when_the_client_waits() -> None:
    detector = TunnelledHttps(3, 411)
    assert detector.packets_needed == 4
    state = SizePattern()
    for i, size in enumerate([600, 600, 600, -900], 1):
        detector.observe(state, size > 0, abs(size))
        assert state.matched is (True if i == 4 else None)


def flow(server: str, port: int, sizes: list[int], t: float = 0.0) -> list[Decision]:
    c = Conn(engine(PROFILE), server=server, dport=port)
    c.handshake(t)
    return [
        c.data(t + 0.1 + i * 0.01, noise(abs(s), i), from_client=s > 0) for i, s in enumerate(sizes)
    ]


def test_s9_22_blocked_on_a_suspect_range_on_port_443() -> None:
    """§9.22: >= 3 client packets of >= 411 B, then the server's answer: dropped from it on."""
    decisions = flow(DIGITALOCEAN, 443, [620, 1448, 530, -1300, 900])
    assert [d.verdict.final for d in decisions[:3]] == [False] * 3  # pending: not let go
    assert [d.fate for d in decisions[:3]] == [Fate.FORWARD] * 3
    answer = decisions[3]
    assert answer.verdict.final and answer.verdict.action is Action.DROP
    assert answer.verdict.rule == "tunnelled-https" and answer.fate is Fate.DROP
    assert answer.classification is not None
    assert answer.classification.protocol is Protocol.TUNNELLED_HTTPS
    assert "3 client packets of >= 411 B (620, 1448, 530)" in answer.classification.detail
    assert decisions[4].fate is Fate.DROP


@pytest.mark.parametrize(("server", "port"), [(DIGITALOCEAN, 5555), (ELSEWHERE, 443)])
def test_s9_22_passes_on_another_port_or_range(server: str, port: int) -> None:
    """§5.5 fortuna: on DigitalOcean port 5555 was not blocked; §9.22: nor another range. No
    rule can apply, so the flow is let go at once (the switch takes it over from the SYN)."""
    decisions = flow(server, port, [620, 1448, 530, -1300, 900])
    assert all(d.verdict.final and d.verdict.action is Action.ALLOW for d in decisions)
    assert {d.fate for d in decisions} == {Fate.FORWARD}
    # The same flow under a copy whose rule has no port or range condition: the pattern matched.
    text = (PROFILES_DIR / f"{PROFILE}.yaml").read_text()
    anywhere = re.sub(r"\n      (server_in|server_ports): .*", "", text)
    c = Conn(engine(load_profile_text(anywhere, "anywhere.yaml")), server=server, dport=port)
    c.handshake(0.0)
    sent = [c.data(0.1 + i * 0.01, noise(abs(s), i), from_client=s > 0) for i, s in
            enumerate([620, 1448, 530, -1300])]  # fmt: skip
    assert sent[3].classification is not None
    assert sent[3].classification.protocol is Protocol.TUNNELLED_HTTPS
    assert sent[3].verdict.action is Action.DROP


def test_one_large_packet_then_the_answer_passes_at_the_answer() -> None:
    """A curl fetch through Shadowsocks (one ClientHello-sized packet, then the server): no
    match, and the flow is let go as soon as the pattern is excluded."""
    decisions = flow(DIGITALOCEAN, 443, [640, -1274, 114])
    assert not decisions[0].verdict.final
    assert decisions[1].verdict.final and decisions[1].verdict.action is Action.ALLOW
    assert decisions[1].classification is not None
    assert decisions[1].classification.protocol is Protocol.FULLY_ENCRYPTED


def test_recognised_protocols_are_not_looked_at() -> None:
    """A TLS flow with a huge ClientHello in three segments is not a fully-encrypted proxy."""
    c = Conn(engine(PROFILE), server=DIGITALOCEAN, dport=443)
    c.handshake(0.0)
    hello = hello_record("example.com", padding=1400)
    first = c.data(0.1, hello[:600])
    assert not first.verdict.final
    c.data(0.11, hello[600:1200])
    c.data(0.12, hello[1200:])
    d = c.data(0.2, noise(1300), from_client=False)
    assert d.verdict.action is Action.ALLOW and d.fate is Fate.FORWARD
    assert d.classification is None or d.classification.protocol is not Protocol.TUNNELLED_HTTPS


def test_a_flow_picked_up_mid_connection_is_not_judged_by_sizes() -> None:
    c = Conn(engine(PROFILE), server=DIGITALOCEAN, dport=443)
    decisions = [
        c.data(0.1 + i * 0.01, noise(abs(s), i), from_client=s > 0)
        for i, s in enumerate([620, 1448, 530, -1300])
    ]
    assert all(d.verdict.action is Action.ALLOW for d in decisions)
    assert {d.fate for d in decisions} == {Fate.FORWARD}


def test_the_profile_budget_must_cover_the_pattern() -> None:
    """The controller sees a flow's packets while the engine inspects it (budget_packets): the
    loader refuses a budget that ends before the pattern can match, naming file:line:field."""
    text = (PROFILES_DIR / f"{PROFILE}.yaml").read_text()
    short = re.sub(r"budget_packets: \{value: 10,", "budget_packets: {value: 3,", text)
    with pytest.raises(ProfileError) as err:
        load_profile_text(short, "short.yaml")
    line = 1 + short[: short.index("budget_packets")].count("\n")
    assert f"short.yaml:{line}:" in str(err.value)
    assert "inspection.budget_packets: the tunnelled_https pattern needs 4 payload packets" in str(
        err.value
    )


def test_the_pattern_needs_a_rule_that_names_it() -> None:
    text = (PROFILES_DIR / f"{PROFILE}.yaml").read_text()
    unused = text.replace("value: [tunnelled-https]", "value: [fully-encrypted]")
    with pytest.raises(ProfileError, match="no rule names protocol 'tunnelled-https'"):
        load_profile_text(unused, "unused.yaml")


def test_thresholds_come_from_the_profile() -> None:
    text = (PROFILES_DIR / f"{PROFILE}.yaml").read_text()
    one = text.replace("client_packets: {value: 3,", "client_packets: {value: 1,").replace(
        "min_bytes: {value: 411,", "min_bytes: {value: 600,"
    )
    prof = load_profile_text(one, "one.yaml")
    c = Conn(engine(prof), server=DIGITALOCEAN, dport=443)
    c.handshake(0.0)
    c.data(0.1, noise(640))
    d = c.data(0.2, noise(1274), from_client=False)
    assert d.verdict.action is Action.DROP and d.verdict.rule == "tunnelled-https"


def test_the_shipped_profile_cites_section_5_5() -> None:
    spec = load_profile(PROFILE).spec
    assert spec.tunnelled_https is not None
    assert (spec.tunnelled_https.client_packets.value, spec.tunnelled_https.min_bytes.value) == (
        3,
        411,
    )
    assert "§5.5" in spec.tunnelled_https.client_packets.source
    assert spec.period.startswith("about 2024-04-25")
