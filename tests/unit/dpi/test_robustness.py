"""Property tests: arbitrary and mutated bytes through decode and classify never crash.

Every parser answers with a value or a typed DecodeError (NeedData for truncation, Malformed for
contradictions, Unsupported for what is out of scope); the engine never lets anything escape.
"""

from __future__ import annotations

import contextlib
import itertools
from functools import cache

import pytest
from crafting import client_hello, handshake_records, record, tcp_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.datapaths import PCAPS
from tspulab.dpi.classify import Classification, Classifier
from tspulab.dpi.errors import DecodeError, Malformed, NeedData
from tspulab.dpi.flow import FlowTable
from tspulab.dpi.http import parse_http_request
from tspulab.dpi.packet import decode
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.reassembly import ReassemblyMode, TcpStream, find_client_hello
from tspulab.dpi.tls import parse_client_hello_message

LINKTYPES = st.sampled_from([0, 1, 12, 101, 113, 228, 229, 276])
MODES = st.sampled_from(list(ReassemblyMode))
HELLO = client_hello(sni="prop.example", padding=40)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=200), LINKTYPES)
def test_decode_arbitrary_bytes(frame: bytes, linktype: int) -> None:
    try:
        pkt = decode(frame, linktype)
    except DecodeError:
        return
    assert len(pkt.payload) <= len(frame)


@SETTINGS
@given(st.binary(max_size=400))
def test_client_hello_parser_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_client_hello_message(data)


@SETTINGS
@given(st.data())
def test_mutated_client_hello_is_value_or_typed_error(data: st.DataObject) -> None:
    msg = bytearray(HELLO)
    for _ in range(data.draw(st.integers(1, 4))):
        msg[data.draw(st.integers(0, len(msg) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(msg)))
    with contextlib.suppress(NeedData, Malformed):
        parse_client_hello_message(bytes(msg[:cut]))


def test_every_prefix_of_a_client_hello_is_need_data() -> None:
    for cut in range(len(HELLO)):
        with pytest.raises(NeedData):
            parse_client_hello_message(HELLO[:cut])


@SETTINGS
@given(st.binary(max_size=400), MODES)
def test_find_client_hello_arbitrary_bytes(data: bytes, mode: ReassemblyMode) -> None:
    with contextlib.suppress(DecodeError):
        find_client_hello(data, mode)


@SETTINGS
@given(st.binary(max_size=300))
def test_http_parser_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_http_request(b"GET " + data)


@SETTINGS
@given(st.data())
def test_stream_reassembles_any_order_and_duplication(data: st.DataObject) -> None:
    """Segments of a stream fed in any order, with repeats, give a prefix of that stream (never
    other bytes), and the whole stream once every segment arrived within the buffer bounds."""
    stream = handshake_records(HELLO, 60)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=12))))
    bounds = [0, *cuts, len(stream)]
    pieces = [(a, stream[a:b]) for a, b in itertools.pairwise(bounds)]
    order = data.draw(st.permutations(pieces + data.draw(st.lists(st.sampled_from(pieces)))))
    s = TcpStream()
    s.syn(41)
    for offset, chunk in order:
        s.feed(42 + offset, chunk)
        assert stream.startswith(bytes(s.data))
    assert bytes(s.data) == stream


@cache
def _real_frames() -> list[tuple[int, bytes]]:
    frames: list[tuple[int, bytes]] = []
    for path in sorted(PCAPS.glob("*.pcap*")):
        frames += [(lt, fr) for _, lt, fr in list(read_capture(path))[:40]]
    synthetic = [record(22, HELLO), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]
    frames += [(1, tcp_frame(p, 1)) for p in synthetic]
    return frames


@SETTINGS
@given(st.data(), MODES)
def test_mutated_real_packets_through_the_engine(data: st.DataObject, mode: ReassemblyMode) -> None:
    frames = _real_frames()
    table = FlowTable()
    classifier = Classifier(mode.value, inspect_packets=4)
    for step in range(data.draw(st.integers(1, 8))):
        linktype, frame = frames[data.draw(st.integers(0, len(frames) - 1))]
        mutated = bytearray(frame)
        for _ in range(data.draw(st.integers(0, 6))):
            if not mutated:
                break
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
        try:
            pkt = decode(bytes(mutated), linktype)
        except DecodeError:
            continue
        flow = table.lookup(pkt, float(step))
        verdict = classifier.observe(pkt, flow, float(step))
        assert verdict is None or isinstance(verdict, Classification)
        assert isinstance(classifier.conclude(flow), Classification)


@SETTINGS
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=12), MODES)
def test_arbitrary_tcp_payloads_through_the_engine(
    payloads: list[bytes], mode: ReassemblyMode
) -> None:
    table = FlowTable()
    classifier = Classifier(mode.value)
    seq = 1
    packets = [decode(tcp_frame(b"", 0, "S"))]
    for p in payloads:
        packets.append(decode(tcp_frame(p, seq)))
        seq += len(p)
    for i, pkt in enumerate(packets):
        classifier.observe(pkt, table.lookup(pkt, float(i)), float(i))


# --- issue 14: capture readers and tunnel decoding on arbitrary bytes ----------------------------

_PCAP_HEADS = [
    bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"),
    bytes.fromhex("a1b23c4d000200040000000000000000 0000ffff00000065".replace(" ", "")),
    bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000"),  # pcapng SHB
]


@SETTINGS
@given(head=st.sampled_from(_PCAP_HEADS), body=st.binary(max_size=400))
def test_capture_readers_raise_only_decode_errors(head: bytes, body: bytes) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.cap"
        path.write_bytes(head + body)
        with contextlib.suppress(DecodeError):
            for ts, linktype, frame in read_capture(path):
                assert isinstance(ts, float) and isinstance(frame, bytes) and linktype >= 0
                with contextlib.suppress(DecodeError):
                    decode(frame, linktype)


_TUNNEL_PREFIXES = [
    bytes.fromhex("450000000000000040040000c0000201c0000202"),  # IPv4, proto 4 (IP in IP)
    bytes.fromhex("450000000000000040290000c0000201c0000202"),  # proto 41 (6in4)
    bytes.fromhex("4500000000000000402f0000c0000201c0000202"),  # GRE
    bytes.fromhex("450000000000000040110000c0000201c00002020868086800000000"),  # UDP 2152 (GTP-U)
    bytes.fromhex("450000000000000040110000c0000201c00002021234 12b500000000".replace(" ", "")),
]


@SETTINGS
@given(prefix=st.sampled_from(_TUNNEL_PREFIXES), inner=st.binary(max_size=120))
def test_tunnels_on_arbitrary_inner_bytes(prefix: bytes, inner: bytes) -> None:
    """The outer IPv4 header announces a tunnel; whatever follows, decode returns a packet or a
    typed error, and classification never raises."""
    frame = bytearray(prefix + inner)
    frame[2:4] = len(frame).to_bytes(2, "big")  # a consistent total length
    with contextlib.suppress(DecodeError):
        pkt = decode(bytes(frame), 101)
        table, classifier = FlowTable(), Classifier()
        classifier.observe(pkt, table.lookup(pkt, 0.0), 0.0)
