"""IP fragments as the 2022 TSPU handled them (tspu-behaviour.md §2.4, CP-TSPU Fig. 8 [M], §9.12):
buffered until complete, forwarded unreassembled, the first fragment's TTL copied into the later
ones, at most 45 fragments per datagram."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Dot1Q, Ether

from tests.unit.dpi.policy_flows import CLIENT, SERVER, Conn, engine, hello_record
from tspulab.dpi.fragments import FragmentCache, Held, ipv4_checksum, parse_fragment
from tspulab.dpi.verdict import Action, Fate


def _frames(
    size: int, fragsize: int, ttls: list[int] | None = None, ident: int = 77
) -> list[bytes]:
    datagram = (
        IP(src=CLIENT, dst=SERVER, id=ident, ttl=64) / UDP(sport=5000, dport=53) / bytes(size)
    )
    parts = fragment(datagram, fragsize=fragsize)
    out = []
    for i, part in enumerate(parts):
        if ttls is not None:
            part.ttl = ttls[i % len(ttls)]
        del part.chksum
        out.append(bytes(Ether() / part))
    return out


def test_fragments_are_held_then_released_unreassembled_with_the_first_ttl() -> None:
    """§2.4: buffered until the datagram is complete, then each fragment forwarded as it came
    (offsets and data unchanged), later fragments with the offset-0 fragment's TTL."""
    frames = _frames(3000, 1000, ttls=[61, 50, 40, 33])
    order = [frames[2], frames[0], frames[3], frames[1]]  # out of order: still complete at the end
    cache = FragmentCache()
    results = [cache.add(f, 1.0 + i / 100) for i, f in enumerate(order)]
    assert [r.held for r in results] == [Held.HELD] * 3 + [Held.RELEASED]
    released = [Ether(f) for f in results[-1].frames]
    assert len(released) == 4 and len(cache) == 0
    assert [p[IP].frag * 8 for p in released] == [Ether(f)[IP].frag * 8 for f in order]
    assert {p[IP].ttl for p in released} == {61}, "the offset-0 fragment's TTL"
    for sent, got in zip(order, released, strict=True):
        assert bytes(Ether(sent)[IP].payload) == bytes(got[IP].payload)  # not reassembled
        check = got[IP].copy()
        del check.chksum
        assert IP(bytes(check)).chksum == got[IP].chksum
    assert ipv4_checksum(bytes(IP(bytes(released[0][IP]))[IP])[:20]) == 0


def test_at_most_45_fragments_per_datagram() -> None:
    """§2.4: the cache allows at most 45 fragments per IP packet: 45 pass, a 46th drops the
    datagram (what is held and what still comes)."""
    cache = FragmentCache()
    ok = _frames(45 * 16 - 8, 16)
    assert len(ok) == 45
    assert [cache.add(f, 0.0).held for f in ok][-1] is Held.RELEASED
    too_many = _frames(46 * 16 - 8, 16, ident=78)
    assert len(too_many) == 46
    held = [cache.add(f, 1.0).held for f in too_many[:-1]]
    assert set(held) == {Held.HELD}
    assert cache.add(too_many[-1], 1.0).held is Held.DROPPED
    assert cache.add(too_many[0], 1.1).held is Held.DROPPED  # a retransmitted fragment too
    assert cache.counters["dropped_over_limit"] == 1


def test_incomplete_datagram_expires() -> None:
    cache = FragmentCache(timeout_s=30.0)
    frames = _frames(2000, 1000)
    assert cache.add(frames[0], 0.0).held is Held.HELD
    assert cache.expire(29.0) == 0 and cache.expire(30.0) == 1 and len(cache) == 0
    assert cache.add(frames[1], 31.0).held is Held.HELD  # a new, incomplete datagram


def test_ipv6_fragments_get_the_first_hop_limit_and_vlan_frames_are_read() -> None:
    pkt = (
        IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=60)
        / IPv6ExtHdrFragment(id=9)
        / UDP(sport=1, dport=2)
        / bytes(2500)
    )
    parts = fragment6(pkt, 1000)
    frames = []
    for i, part in enumerate(parts):
        part.hlim = 60 - i
        frames.append(bytes(Ether() / Dot1Q(vlan=5) / part))
    cache = FragmentCache()
    results = [cache.add(f, 0.0) for f in frames]
    assert results[-1].held is Held.RELEASED
    assert {Ether(f)[IPv6].hlim for f in results[-1].frames} == {60}


def test_not_fragments_pass() -> None:
    cache = FragmentCache()
    whole = bytes(Ether() / IP(src=CLIENT, dst=SERVER) / UDP() / b"x")
    assert cache.add(whole, 0.0).held is Held.PASS and parse_fragment(whole) is None
    assert cache.add(b"\x00" * 10, 0.0).held is Held.PASS


def test_tspu_2022_holds_fragments_and_never_reads_a_hello_split_across_them() -> None:
    """§2.4, §9.12: a ClientHello with a registry name split across IP fragments is not matched
    (no reassembly); the engine holds the fragments and releases them, unreassembled, with the
    first fragment's TTL."""
    e = engine("tspu-2022", ["www.blocked.example"])
    c = Conn(e)
    c.handshake(0.0)
    seq = c.seq[0]
    segment = (
        IP(src=CLIENT, dst=SERVER, id=300, ttl=63)
        / TCP(sport=40000, dport=443, flags="PA", seq=seq, ack=c.seq[1])
        / hello_record("www.blocked.example", padding=200)
    )
    parts = fragment(segment, fragsize=120)
    decisions = []
    for i, part in enumerate(parts):
        part.ttl = 63 - i
        del part.chksum
        decisions.append(e.process(bytes(Ether() / part), 0.1 + i / 1000))
    assert all(d.fate is Fate.FORWARD for d in decisions)
    assert all(d.held for d in decisions) and not any(d.released for d in decisions[:-1])
    released = [Ether(f) for f in decisions[-1].released]
    assert len(released) == len(parts) and {p[IP].ttl for p in released} == {63}
    assert decisions[-1].verdict.action is not Action.DROP
    # The same ClientHello in one unfragmented segment is dropped (SNI-IV).
    whole = Conn(e, sport=40001)
    whole.handshake(1.0)
    assert whole.data(1.1, hello_record("www.blocked.example", padding=200)).fate is Fate.DROP


def test_tspu_2022_drops_a_datagram_of_46_fragments_and_profiles_without_a_cache_do_not() -> None:
    """§2.4: at most 45 fragments per IP packet; twitter-throttle-2021 (no fragment measurement)
    has no cache and forwards fragments as they come."""
    frames = _frames(46 * 16 - 8, 16, ident=400)
    e = engine("tspu-2022")
    fates = [e.process(f, 0.0).fate for f in frames]
    assert fates[:-1] == [Fate.FORWARD] * 45 and fates[-1] is Fate.DROP
    plain = engine("twitter-throttle-2021")
    ds = [plain.process(f, 0.0) for f in frames]
    assert {d.fate for d in ds} == {Fate.FORWARD} and not any(d.held for d in ds)


@pytest.mark.parametrize("bad", [b"", bytes(Ether() / IP(flags="MF") / b"x")[:30]])
def test_truncated_frames_pass(bad: bytes) -> None:
    assert FragmentCache().add(bad, 0.0).held is Held.PASS
