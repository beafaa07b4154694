"""tspu-2022: each test checks one fact of tspu-behaviour.md §2 (CP-TSPU) or §5.3 (NTC-1823)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, fragment
from scapy.layers.l2 import Ether

from tests.unit.dpi.policy_flows import SERVER, Conn, engine, hello_record
from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.verdict import Action, Fate

PROFILE = "tspu-2022"
REGISTRY = ["blocked.example", "*.blocked.example", "198.51.100.7"]


def eng(**sets: list[str]) -> TspuEngine:
    return engine(PROFILE, REGISTRY, sets=dict(sets))


def quic_like(size: int, version: bytes = b"\x00\x00\x00\x01") -> bytes:
    return b"\xc3" + version + bytes(size - 5)


def test_ip_mode_drops_both_directions_and_icmp() -> None:
    """§2.2 IP [S], §9.13: all packets to/from a listed address are dropped, ICMP included; the
    client sees a SYN timeout."""
    e = eng()
    c = Conn(e, server="198.51.100.7")
    d = c.tcp(0.0, "S")
    assert d.verdict.final and d.verdict.action is Action.DROP and d.fate is Fate.DROP
    assert "§2.2 IP" in d.verdict.reason
    assert Conn(e, server="198.51.100.7").icmp(0.1).fate is Fate.DROP
    inbound = Conn(e, client="198.51.100.7", server="10.0.0.2", sport=443, dport=40000)
    assert inbound.tcp(0.2, "S").fate is Fate.DROP


def test_sni_iv_drops_the_client_hello_and_everything_after() -> None:
    """§2.2 SNI-IV [S], §9.2: a registry SNI in one segment - the ClientHello itself is dropped,
    no server data arrives, no RST."""
    c = Conn(eng())
    assert [d.fate for d in c.handshake(0.0)] == [Fate.FORWARD] * 3
    d = c.data(0.1, hello_record("www.blocked.example"))
    assert d.verdict.final and d.verdict.rule == "sni-iv" and d.fate is Fate.DROP
    assert c.data(0.4, hello_record("www.blocked.example")).fate is Fate.DROP  # retransmission
    assert c.data(0.5, b"server data", from_client=False).fate is Fate.DROP


def test_sni_i_rewrites_the_server_reply_into_a_reset() -> None:
    """§2.2 SNI-I [S], §9.3: the ClientHello passes; the server's first reply reaches the client as
    a RST/ACK (rewritten in path, not injected)."""
    c = Conn(eng())
    c.handshake(0.0)
    d = c.data(0.1, hello_record("twitter.com"))
    assert d.fate is Fate.FORWARD and d.verdict.action is Action.RESET
    assert (d.verdict.reset_side, d.verdict.reset_mode) == ("client", "rewrite")
    assert c.tcp(0.11, "A").fate is Fate.FORWARD  # a client packet is not the reply
    assert c.data(0.15, b"\x16\x03\x03\x00\x50" + bytes(80), from_client=False).fate is Fate.RESET
    assert c.data(0.2, b"more", from_client=False).fate is Fate.DROP


def test_sni_ii_lets_5_to_8_packets_pass_then_drops_both_ways() -> None:
    """§2.2 SNI-II [S], §9.4: 5-8 more packets (either direction) pass after the ClientHello, then
    all are dropped; the pick is deterministic per flow (replay and live agree)."""
    picks = []
    for sport in range(41000, 41012):
        runs = []
        for _ in range(2):
            c = Conn(eng(**{"sni-ii": ["*.google.com"]}), sport=sport)
            c.handshake(0.0)
            d = c.data(0.1, hello_record("news.google.com"))
            assert d.fate is Fate.FORWARD and d.verdict.action is Action.DROP_AFTER
            fates = [
                c.data(0.2 + i / 100, b"x" * 100, from_client=i % 2 == 1).fate for i in range(12)
            ]
            passed = fates.index(Fate.DROP)
            assert set(fates[passed:]) == {Fate.DROP}
            assert passed == d.verdict.after_packets
            runs.append(passed)
        assert runs[0] == runs[1]
        picks.append(runs[0])
    assert set(picks) <= {5, 6, 7, 8} and len(set(picks)) > 1


def test_split_client_hello_passes() -> None:
    """§2.5 CP-TSPU, §9.5: a ClientHello split across two TCP segments is not matched."""
    c = Conn(eng())
    c.handshake(0.0)
    hello = hello_record("www.blocked.example")
    assert c.data(0.1, hello[:50]).fate is Fate.FORWARD
    assert c.data(0.11, hello[50:]).fate is Fate.FORWARD
    assert c.log[-1].verdict.action is Action.ALLOW


def test_client_hello_in_ip_fragments_is_not_matched() -> None:
    """§2.4 CP-TSPU, §9.12: fragments are forwarded unreassembled, so a ClientHello split across IP
    fragments is not matched."""
    c = Conn(eng())
    c.handshake(0.0)
    segment = (
        IP(src="10.0.0.2", dst=SERVER)
        / TCP(sport=40000, dport=443, seq=c.seq[0], flags="PA")
        / hello_record("www.blocked.example")
    )
    frags = fragment(segment, fragsize=64)
    assert len(frags) > 2
    decisions = [c.feed(bytes(Ether() / f), 0.1 + i / 1000) for i, f in enumerate(frags)]
    assert all(d.fate is Fate.FORWARD for d in decisions)
    assert all(d.verdict.action is Action.ALLOW for d in decisions)


def test_remote_syn_split_handshake_unblocks() -> None:
    """§2.3 CP-TSPU, §9.11: a SYN from the server side (split handshake) - the flow is not blocked
    even with a trigger."""
    c = Conn(eng())
    c.tcp(0.0, "S")
    d = c.tcp(0.01, "S", from_client=False)
    assert (
        d.verdict.final
        and d.verdict.action is Action.ALLOW
        and "split handshake" in d.verdict.reason
    )
    c.tcp(0.02, "SA")
    assert c.data(0.1, hello_record("www.blocked.example")).fate is Fate.FORWARD


def test_outside_initiated_flow_is_allowed_at_once() -> None:
    """§2.3 CP-TSPU, §9.1: a connection opened from outside is never blocked by SNI."""
    c = Conn(eng(), client=SERVER, server="10.0.0.2", sport=443, dport=40000)
    first = c.tcp(0.0, "S")
    assert first.verdict.final and first.verdict.action is Action.ALLOW
    c.tcp(0.01, "SA", from_client=False)
    assert c.data(0.1, hello_record("www.blocked.example"), from_client=False).fate is Fate.FORWARD


def test_quic_v1_first_datagram_of_1001_bytes_is_dropped_and_flow_blacklisted() -> None:
    """§5.3 NTC-1823 post 10, §9.14: UDP to 443, >= 1001 bytes, version 00000001 - dropped; the
    smallest trigger is exactly 1001 bytes; the whole 4-tuple is blacklisted."""
    c = Conn(eng())
    d = c.udp(0.0, quic_like(1001))
    assert d.verdict.final and d.verdict.rule == "quic-v1-1001" and d.fate is Fate.DROP
    assert c.udp(0.1, b"\x40" + bytes(50)).fate is Fate.DROP
    small = Conn(eng(), sport=40001).udp(0.0, quic_like(1000))
    assert small.verdict.final and small.verdict.action is Action.ALLOW


def test_quic_rule_needs_port_443_and_version_1() -> None:
    """§5.3 NTC-1823 post 10: destination port 443 only; bytes 1-4 must be 00000001 (draft-29
    FF00001D bypassed it)."""
    assert Conn(eng(), dport=8443).udp(0.0, quic_like(1200)).fate is Fate.FORWARD
    draft29 = quic_like(1200, b"\xff\x00\x00\x1d")
    assert Conn(eng()).udp(0.0, draft29).fate is Fate.FORWARD


def test_non_quic_first_datagram_means_flow_never_inspected() -> None:
    """§5.3 NTC-1823 post 11: the filter is stateful; if the first packet of the 4-tuple is not QUIC,
    later packets are not checked (one fake first packet works)."""
    c = Conn(eng())
    first = c.udp(0.0, b"fake" * 10)
    assert first.verdict.final and first.verdict.action is Action.ALLOW
    assert c.udp(0.1, quic_like(1200)).fate is Fate.FORWARD


def test_inbound_first_quic_is_not_filtered() -> None:
    """§5.3 NTC-1823 post 11, §9.14: only outgoing packets are filtered; inbound-first flows pass."""
    c = Conn(eng(), client=SERVER, server="10.0.0.2", sport=443, dport=443)
    assert c.udp(0.0, quic_like(1200)).fate is Fate.FORWARD
    assert c.udp(0.1, quic_like(1200), from_client=False).fate is Fate.FORWARD


def test_quic_allowlisted_destination_passes() -> None:
    """§5.3 NTC-1823 post 11, §9.14: QUIC to allowlisted (vk.com) addresses kept working."""
    e = eng(**{"quic-allow": ["93.184.216.0/24"]})
    assert Conn(e).udp(0.0, quic_like(1200)).fate is Fate.FORWARD
