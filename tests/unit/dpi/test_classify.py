"""The classifier engine on crafted flows: each circumvention trick against each reassembly mode."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from crafting import (
    CCS,
    client_hello,
    handshake_records,
    record,
    segments,
    tcp_frame,
    udp_frame,
    unknown_extension,
)
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, UDP, fragment
from scapy.layers.l2 import Ether

from tests.datapaths import PCAPS
from tspulab.dpi.classify import Classification, Classifier, Protocol
from tspulab.dpi.flow import FlowTable
from tspulab.dpi.packet import Packet, decode
from tspulab.replay import replay_file

MODES = ("none", "tcp", "tls-records")
SNI = "blocked.example"
HELLO = client_hello(sni=SNI)
RECORD = record(22, HELLO)


def run(packets: list[Packet], mode: str, **kwargs: object) -> Classification:
    """Feed packets through a fresh table and classifier; the verdict, or the end-of-flow guess."""
    table = FlowTable()
    classifier = Classifier(mode, **kwargs)  # type: ignore[arg-type]
    flow = None
    for i, pkt in enumerate(packets):
        flow = table.lookup(pkt, float(i))
        classifier.observe(pkt, flow, float(i))
    assert flow is not None
    return classifier.conclude(flow)


def _sni_offset() -> int:
    return RECORD.index(SNI.encode()) + 4  # inside the host name


# (name, client stream, segment cuts, expected SNI seen per mode none/tcp/tls-records)
CASES = [
    ("one segment, one record", RECORD, [], (True, True, True)),
    ("split at the SNI", RECORD, [_sni_offset()], (False, True, True)),
    ("split in the record header", RECORD, [3], (False, True, True)),
    ("record fragmentation, one segment", handshake_records(HELLO, 50), [], (False, False, True)),
    (
        "record fragmentation, a segment per record",
        handshake_records(HELLO, 50),
        list(range(55, len(handshake_records(HELLO, 50)), 55)),
        (False, False, True),
    ),
    ("CCS record before the ClientHello", CCS + RECORD, [], (False, False, True)),
    ("CCS in its own segment first", CCS + RECORD, [len(CCS)], (True, False, True)),
]


@pytest.mark.parametrize(("name", "stream", "cuts", "seen"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", MODES)
def test_client_hello_visibility(
    name: str, stream: bytes, cuts: list[int], seen: tuple[bool, bool, bool], mode: str
) -> None:
    verdict = run(segments(stream, cuts), mode)
    expected = seen[MODES.index(mode)]
    assert verdict.protocol is Protocol.TLS
    assert (verdict.sni == SNI) is expected, verdict
    assert verdict.reassembly == mode
    if expected:
        assert verdict.decided_at is not None and verdict.ja4 and verdict.ja4.startswith("t13d")
    else:
        # TLS was seen but no ClientHello this mode can read: the end-of-flow guess.
        assert verdict.decided_at is None and verdict.sni is None


@pytest.mark.parametrize("mode", MODES)
def test_padding_beyond_one_packet(mode: str) -> None:
    big = record(22, client_hello(sni=SNI, padding=1600))
    assert len(big) > 1500
    verdict = run(segments(big, list(range(1460, len(big), 1460))), mode)
    assert (verdict.sni == SNI) is (mode != "none")


@pytest.mark.parametrize("mode", MODES)
def test_sni_trailing_dot_and_mixed_case_kept_as_sent(mode: str) -> None:
    verdict = run(segments(record(22, client_hello(sni="WwW.Blocked.EXAMPLE.")), []), mode)
    assert verdict.sni == "WwW.Blocked.EXAMPLE."


@pytest.mark.parametrize("mode", MODES)
def test_garbage_and_duplicate_extensions(mode: str) -> None:
    duplicate = unknown_extension(0, b"\x00\x0e\x00\x00\x0bother.test")
    garbage = unknown_extension(0x7777, bytes(range(256)))
    verdict = run(segments(record(22, client_hello(sni=SNI, extra=[garbage, duplicate])), []), mode)
    assert verdict.sni == SNI


@pytest.mark.parametrize("mode", MODES)
def test_truncated_client_hello_gives_tls_without_sni(mode: str) -> None:
    verdict = run(segments(RECORD[: len(RECORD) // 2], []), mode)
    assert (verdict.protocol, verdict.sni, verdict.decided_at) == (Protocol.TLS, None, None)


@pytest.mark.parametrize("mode", MODES)
def test_over_long_inner_length_is_not_a_crash(mode: str) -> None:
    broken = bytearray(RECORD)
    broken[5 + 4 + 2 + 32] = 200  # session_id length 200 > 32: Malformed
    verdict = run(segments(bytes(broken), []), mode)
    assert verdict.sni is None and "session_id" in verdict.detail


@pytest.mark.parametrize(("mode", "seen"), [("none", False), ("tcp", True), ("tls-records", True)])
def test_out_of_order_segments(mode: str, seen: bool) -> None:
    syn, first, second = segments(RECORD, [_sni_offset()])
    assert (run([syn, second, first], mode).sni == SNI) is seen


def test_retransmission_first_seen_bytes_win() -> None:
    cut = _sni_offset()
    syn, first, second = segments(RECORD, [cut])
    other = record(22, client_hello(sni="zzzzzzz.example"))
    assert len(other) == len(RECORD)
    rewrite = decode(tcp_frame(other[cut:], second.seq))  # same sequence range, other bytes
    assert run([syn, first, second, rewrite], "tcp").sni == SNI
    # Rewrite first: its bytes win from the cut on, the first segment's before it.
    assert run([syn, first, rewrite, second], "tcp").sni == SNI[:4] + "zzz.example"


def test_client_hello_from_the_server_side_is_seen() -> None:
    syn = decode(tcp_frame(b"", 1, "S"))
    from_server = decode(tcp_frame(RECORD, 500, from_client=False))
    verdict = run([syn, from_server], "none")
    assert verdict.sni == SNI and "from server side" in verdict.detail


# --- HTTP -------------------------------------------------------------------------------------

REQUEST = b"GET /page HTTP/1.1\r\nUser-Agent: t\r\nHost: Blocked.Example\r\n\r\n"


@pytest.mark.parametrize("mode", MODES)
def test_http_host(mode: str) -> None:
    verdict = run(segments(REQUEST, []), mode)
    assert (verdict.protocol, verdict.host) == (Protocol.HTTP, "Blocked.Example")
    assert verdict.detail == "GET /page"


@pytest.mark.parametrize(("mode", "host"), [("none", None), ("tcp", "Blocked.Example")])
def test_http_host_split_across_segments(mode: str, host: str | None) -> None:
    verdict = run(segments(REQUEST, [REQUEST.index(b"Host") + 3]), mode)
    assert (verdict.protocol, verdict.host) == (Protocol.HTTP, host)


# --- the engine ---------------------------------------------------------------------------------


def test_decided_flow_takes_the_cached_path() -> None:
    table, classifier = FlowTable(), Classifier()
    packets = segments(RECORD, [])
    for i, pkt in enumerate(packets):
        verdict = classifier.observe(pkt, table.lookup(pkt, i), i)
    assert verdict is not None and verdict.decided_at == 2
    flow = table.lookup(packets[-1], 5.0)
    inspection = flow.inspection
    garbage = decode(tcp_frame(b"\x16\x03\x01\x00\x05hello", 9999))
    assert classifier.observe(garbage, table.lookup(garbage, 6.0), 6.0) is verdict
    assert flow.inspection is inspection and flow.packets == 4


def test_budget_exhausted_decides_unknown() -> None:
    rng = random.Random(7)
    packets = [decode(udp_frame(bytes([0x40]) + rng.randbytes(60), dport=9999)) for _ in range(12)]
    table, classifier = FlowTable(), Classifier(inspect_packets=5)
    results = [classifier.observe(p, table.lookup(p, 0.0), 0.0) for p in packets]
    assert results[:4] == [None] * 4
    assert results[4] is not None and results[4].protocol is Protocol.UNKNOWN
    assert results[4].decided_at == 5 and results[4].detail.startswith("budget exhausted")
    assert all(r is results[4] for r in results[5:])


def test_tor_relay_address_decides_at_the_first_packet() -> None:
    verdict = run([decode(tcp_frame(b"", 1, "S"))], "none", tor_relays=frozenset({"93.184.216.34"}))
    assert (verdict.protocol, verdict.decided_at) == (Protocol.TOR, 1)


def test_icmp_is_decided_unknown() -> None:
    verdict = run([decode(bytes(Ether() / IP(src="10.0.0.2", dst="1.1.1.1") / ICMP()))], "none")
    assert (verdict.protocol, verdict.detail, verdict.decided_at) == (Protocol.UNKNOWN, "icmp", 1)


def test_non_first_fragments_are_not_inspected() -> None:
    # A datagram whose later fragment happens to start with a ClientHello record.
    payload = b"\x00" * 600 + RECORD
    frags = fragment(IP(src="10.0.0.2", dst="1.2.3.4") / UDP(sport=5, dport=443) / payload, 608)
    packets = [decode(bytes(Ether() / f)) for f in frags]
    assert run(packets, "none").sni is None


def test_fully_encrypted_first_packet_needs_the_handshake() -> None:
    blob = random.Random(1).randbytes(300)
    with_syn = run([decode(tcp_frame(b"", 1, "S")), decode(tcp_frame(blob, 2))], "none")
    assert with_syn.protocol is Protocol.FULLY_ENCRYPTED and with_syn.decided_at == 2
    mid_flow = run([decode(tcp_frame(blob, 2))], "none")
    assert mid_flow.protocol is Protocol.UNKNOWN


def test_dns_query_name_in_host() -> None:
    query = bytes(DNS(id=1, rd=1, qd=DNSQR(qname="blocked.example")))
    verdict = run([decode(udp_frame(query, dport=53))], "none")
    assert (verdict.protocol, verdict.host) == (Protocol.DNS, "blocked.example")


def test_google_quic_version_tag() -> None:
    gquic = bytes([0x0D]) + b"\x11" * 8 + b"Q043" + b"\x01" + random.Random(3).randbytes(1300)
    verdict = run([decode(udp_frame(gquic))], "none")
    assert (verdict.protocol, verdict.detail) == (Protocol.QUIC, "gquic Q043")


def _capture(name: str) -> Path:
    path = PCAPS / name
    assert path.exists(), f"shipped capture missing: {path}"
    return path


@pytest.mark.parametrize(("mode", "seen"), [("none", False), ("tcp", True), ("tls-records", True)])
def test_quic_client_hello_across_datagrams(mode: str, seen: bool) -> None:
    # The capture's ClientHello (no SNI) spans two Initial datagrams.
    (flow,) = replay_file(_capture("quic_frags_ch_in_multiple_packets.pcapng"), mode)
    verdict = flow.classification
    assert verdict.protocol is Protocol.QUIC
    assert (verdict.ja4 is not None) is seen
    assert (verdict.decided_at == 2) is seen


@pytest.mark.parametrize(("mode", "seen"), [("none", False), ("tcp", True), ("tls-records", True)])
def test_real_client_hello_split_over_segments(mode: str, seen: bool) -> None:
    flows = replay_file(_capture("tls_with_huge_ch.pcapng"), mode, inspect_packets=24)
    verdict = next(f.classification for f in flows if f.server_port == 443)
    assert verdict.protocol is Protocol.TLS
    assert (verdict.ja4 is not None) is seen


def test_replay_cli_json_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tspulab.cli import main

    capture = _capture("tls_ech.pcapng")
    assert main(["replay", "--json", "--subscriber-net", "192.168.0.0/16", str(capture)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    tls = [r for r in rows if r["classification"]["protocol"] == "tls"]
    assert tls and tls[0]["classification"]["has_ech"] is True
    assert tls[0]["classification"]["sni"] == "performance.radar.cloudflare.com"
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    assert main(["replay", str(bad)]) == 2
    assert "not a pcap or pcapng file" in capsys.readouterr().err
