"""Stream and client strategies on the live bench: the wire form each promises, at the box, and
the verdicts of the 2021 throttler, the 2022 TSPU and the 2026 reassembling node on a replay of
that capture. Each test cites the fact sheet (docs/tspu-behaviour.md) and its primary source."""

from __future__ import annotations

import dpkt

from tspulab.strategies import hello

NAME = b"twitter.com"


def _data(run) -> list[dpkt.ip.IP]:  # type: ignore[no-untyped-def]
    return [p for p in run.client_segments() if isinstance(p.data, dpkt.tcp.TCP) and p.data.data]


def _first_flow(run) -> list[dpkt.ip.IP]:  # type: ignore[no-untyped-def]
    segments = _data(run)
    port = segments[0].data.sport
    return [p for p in segments if p.data.sport == port]


def test_control_is_acted_on_by_all_three_profiles(run) -> None:  # type: ignore[no-untyped-def]
    """Without a strategy the ClientHello is whole in one segment: SNI-I reset (2022, OONI-22
    §2.2), policing (2021, CP-THR §3), SNI-IV drop after reassembly (2026, §5.10)."""
    r = run("none")
    assert all(t.ok for t in r.trials)
    assert NAME in bytes(_first_flow(r)[0].data.data)
    assert r.verdicts("tspu-2022") == ["reset/sni-i"] * 2
    assert r.verdicts("twitter-throttle-2021") == ["police/twitter-sni"] * 2
    assert r.verdicts("tspu-2026-reassembly") == ["drop/sni-iv"] * 2


def test_split_at_the_sni(run) -> None:  # type: ignore[no-untyped-def]
    """§6 split row: works on the 2021 throttler (CP-THR §3) and 2022 TSPU (CP-TSPU §2.5), fails
    on 2026 nodes that reassemble the stream (§5.10, teleproxy #39)."""
    r = run("split:sni")
    first, second = _first_flow(r)[:2]
    assert first.data.seq + len(first.data.data) == second.data.seq
    whole = bytes(first.data.data) + bytes(second.data.data)
    cut = len(first.data.data)
    at = whole.find(NAME)
    assert at < cut < at + len(NAME)  # the cut is inside the host name
    assert hello.layout(whole)  # the two segments are the one ClientHello record
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")
    assert not r.passes("tspu-2026-reassembly")
    assert r.verdicts("tspu-2026-reassembly") == ["drop/sni-iv"] * 2


def test_disorder_sends_the_second_part_first(run) -> None:  # type: ignore[no-untyped-def]
    """§6 split row (ByeDPI --disorder): the first part goes with TTL 1, dies at the gateway
    before the box, and is retransmitted after the second part."""
    r = run("disorder:sni")
    flow = _first_flow(r)
    assert flow[0].data.seq > flow[1].data.seq  # the box sees the later bytes first
    assert all(p.ttl > 1 for p in flow)  # the TTL-1 copy never reached the box
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")
    assert not r.passes("tspu-2026-reassembly")


def test_tls_record_split(run) -> None:  # type: ignore[no-untyped-def]
    """§6 TLS record fragmentation row: works 2021-22, no TLS-record reassembly (CP-THR §3,
    CP-TSPU §2.5, BYEDPI --tlsrec). The 2026 profile reassembles TCP, not records (§5.10)."""
    r = run("tlsrec:1")
    payload = bytes(_first_flow(r)[0].data.data)
    assert payload[0] == 22 and int.from_bytes(payload[3:5], "big") == 1  # a 1-byte record
    assert payload[6] == 22  # then the rest of the ClientHello in a second handshake record
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")
    assert r.passes("tspu-2026-reassembly")


def test_split_with_tls_record_split(run) -> None:  # type: ignore[no-untyped-def]
    """The issue's example spec `split:sni+tlsrec:1`: two records, cut into two segments."""
    r = run("split:sni+tlsrec:1")
    flow = _first_flow(r)
    assert len(flow[0].data.data) < 200 and NAME not in bytes(flow[0].data.data)
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")


def test_oob_byte_sets_the_urgent_pointer(run) -> None:  # type: ignore[no-untyped-def]
    """BYEDPI --oob: one urgent byte after the first part; the server's stream skips it."""
    r = run("oob:sni")
    urgent = [p for p in _first_flow(r) if p.data.flags & dpkt.tcp.TH_URG]
    assert urgent and all(t.ok for t in r.trials)
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")


def test_padding_beyond_one_packet(run) -> None:  # type: ignore[no-untyped-def]
    """§6 padding row: a ClientHello beyond the MTU works 2021-22 (CP-THR §3, CP-TSPU §2.5)."""
    r = run("pad:1600")
    flow = _first_flow(r)
    record_len = int.from_bytes(bytes(flow[0].data.data)[3:5], "big")
    assert record_len > 1500 and len(flow[0].data.data) < record_len + 5
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")
    assert not r.passes("tspu-2026-reassembly")


def test_ccs_record_first(run) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR: a CCS record before the ClientHello in the same segment defeats the 2021
    parser. The replay agrees; but nginx (OpenSSL 3.0) refuses a CCS before the ClientHello
    ("wrong version number"), so the connection fails here."""
    r = run("prefix:ccs")
    payload = bytes(_first_flow(r)[0].data.data)
    assert payload[:6] == b"\x14\x03\x01\x00\x01\x01" and payload[6] == 22
    assert all(j is not None and j.passed for j in r.judged["twitter-throttle-2021"])
    assert all(j is not None and j.passed for j in r.judged["tspu-2022"])
    assert not any(t.ok for t in r.trials)
    assert "wrong version number" in r.trials[0].detail


def test_sni_case_is_folded_by_every_profile(run) -> None:  # type: ignore[no-untyped-def]
    """§6 SNI case row: case-mixing targets older ISP DPIs (ZAPRET --domcase, GDPI -m); the
    profiles fold case (assumed, names are case-insensitive)."""
    r = run("sni-case")
    assert b"TwItTeR.CoM" in bytes(_first_flow(r)[0].data.data)
    assert all(t.ok for t in r.trials)
    assert not r.passes("tspu-2022") and not r.passes("twitter-throttle-2021")


def test_trailing_dot_passes_the_2021_throttler(run) -> None:  # type: ignore[no-untyped-def]
    """§6 SNI row / §3 CP-THR: a trailing dot in the SNI worked on the 2021 throttler. The
    profile's rule is the source's ``*twitter.com`` (the name ends with it), which
    ``twitter.com.`` does not; tspu-2022 strips the dot and still blocks."""
    r = run("sni-dot")
    assert b"twitter.com." in bytes(_first_flow(r)[0].data.data)
    assert all(t.ok for t in r.trials)
    assert r.passes("twitter-throttle-2021")
