"""Packet strategies (the NFQUEUE rewriter in the subscriber's namespace) and the server-side
ones, on the live bench: the wire form at the box and the verdicts of a replay, each test citing
docs/tspu-behaviour.md and its primary source."""

from __future__ import annotations

import dpkt

from tspulab.strategies import hello

NAME = b"twitter.com"


def _data(run) -> list[dpkt.ip.IP]:  # type: ignore[no-untyped-def]
    return [p for p in run.client_segments() if isinstance(p.data, dpkt.tcp.TCP) and p.data.data]


def test_decoy_hello_fake_fails_the_2021_throttler(run) -> None:  # type: ignore[no-untyped-def]
    """§6 fake row / §3 CP-THR: a single fake ClientHello fails against the 2021 throttler (it
    keeps inspecting 15-20 packets after a non-triggering TLS record)."""
    r = run("fake:ttl=2")
    fake, real = _data(r)[:2]
    assert fake.ttl == 1 and real.ttl > 1  # TTL 2 from the client, one router before the box
    assert fake.data.seq == real.data.seq
    assert hello.layout(bytes(fake.data.data)).name_len == len("www.example.com")
    assert b"www.example.com" in bytes(fake.data.data) and NAME in bytes(real.data.data)
    assert all(t.ok for t in r.trials)
    assert r.verdicts("twitter-throttle-2021") == ["police/twitter-sni"] * 2


def test_random_fake_of_101_bytes_or_more_passes_the_2021_throttler(run) -> None:  # type: ignore[no-untyped-def]
    """§6 fake row / §3 CP-THR: a first packet of >= 101 random bytes ends the throttler's
    inspection, so the real ClientHello after it passes."""
    r = run("fake:ttl=2:data=random:len=120")
    fake = _data(r)[0]
    assert fake.ttl == 1 and len(fake.data.data) == 120
    assert r.passes("twitter-throttle-2021")


def test_random_fake_below_101_bytes_does_not(run) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR: the threshold is 101 bytes; a 64-byte random first packet keeps the throttler
    inspecting (the engine re-arms after a non-TLS packet too: §9.8)."""
    r = run("fake:ttl=2:data=random:len=64")
    assert len(_data(r)[0].data.data) == 64
    assert not r.passes("twitter-throttle-2021")


def test_md5_and_badsum_fakes_reach_the_box_and_not_the_server(run) -> None:  # type: ignore[no-untyped-def]
    """§6 fake row (zapret md5sig, GoodbyeDPI --wrong-chksum): the server drops the fake (no MD5
    key; bad checksum) and the connection works."""
    for spec in ("fake:md5:data=random:len=120", "fake:badsum:data=random:len=120"):
        r = run(spec)
        fake = _data(r)[0]
        assert len(fake.data.data) == 120 and all(t.ok for t in r.trials), spec
        if "md5" in spec:
            assert any(kind == 19 for kind, _ in dpkt.tcp.parse_opts(bytes(fake.data.opts)))
        else:
            sent = fake.data.sum
            fake.data.sum = 0
            fake.sum = 0
            assert sent != dpkt.ip.IP(bytes(fake)).data.sum
        assert r.passes("twitter-throttle-2021"), spec


def test_ip_fragments_are_not_reassembled_by_the_box(run) -> None:  # type: ignore[no-untyped-def]
    """§2.4 / §6 IP fragmentation row (CP-TSPU): the 2022 TSPU buffers fragments but does not
    reassemble them, so a ClientHello cut across fragments is not matched."""
    r = run("ipfrag:sni")
    frags = [p for p in r.client_segments() if p.mf or p.offset]
    assert len(frags) >= 4  # two fragments per trial
    first = next(p for p in frags if p.mf and p.offset == 0)
    assert NAME not in bytes(first.data)  # the cut is inside the name
    assert all(t.ok for t in r.trials)
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")


def test_overlapping_fragments_are_dropped_by_the_linux_server(run) -> None:  # type: ignore[no-untyped-def]
    """Not from §6: Linux discards IPv4 datagrams with overlapping fragments (IpExtReasmOverlaps),
    so ipfrag with overlap breaks the connection to a Linux server."""
    r = run("ipfrag:sni:overlap=8", trials=1)
    assert not r.trials[0].ok


def test_small_server_window_makes_the_client_segment_its_hello(run) -> None:  # type: ignore[no-untyped-def]
    """§2.5 / §6 server-side small window row (CP-TSPU, brdgrd): works against the 2022 TSPU."""
    r = run("srvwin:40")
    synacks = [p for p in r.server_packets() if p.data.flags & dpkt.tcp.TH_SYN]
    assert synacks and all(p.data.win == 40 for p in synacks)
    first_port = _data(r)[0].data.sport
    assert len(_data(r)[0].data.data) <= 40 and _data(r)[0].data.sport == first_port
    assert all(t.ok for t in r.trials)
    assert r.passes("tspu-2022") and r.passes("twitter-throttle-2021")
    assert not r.passes("tspu-2026-reassembly")


def test_split_handshake_shows_the_box_a_syn_from_the_server(run) -> None:  # type: ignore[no-untyped-def]
    """§2.3 / §6 server-side split handshake row (CP-TSPU): a SYN from the remote side un-blocks
    the flow on the 2022 TSPU."""
    r = run("split-handshake")
    flags = [p.data.flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK) for p in r.server_packets()]
    assert dpkt.tcp.TH_SYN in flags  # a bare SYN from the server side
    assert dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK not in flags  # no SYN/ACK from the server
    assert all(t.ok for t in r.trials)
    assert r.passes("tspu-2022")
