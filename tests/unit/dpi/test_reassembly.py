"""TCP stream reassembly rules and where each mode finds a ClientHello."""

from __future__ import annotations

import pytest
from crafting import CCS, client_hello, handshake_records, record

from tspulab.dpi.errors import Malformed, NeedData
from tspulab.dpi.reassembly import (
    MAX_RECORDS_BEFORE_HELLO,
    NotClientHello,
    OverlapPolicy,
    ReassemblyMode,
    TcpStream,
    find_client_hello,
    looks_like_tls_record,
)

NONE, TCP, RECORDS = ReassemblyMode.NONE, ReassemblyMode.TCP, ReassemblyMode.TLS_RECORDS


def test_in_order_segments_join() -> None:
    s = TcpStream()
    s.syn(999)
    assert s.feed(1000, b"abc") and s.feed(1003, b"def")
    assert bytes(s.data) == b"abcdef"


def test_start_without_syn_is_first_data_segment() -> None:
    s = TcpStream()
    s.feed(5000, b"xy")
    s.feed(5002, b"z")
    assert bytes(s.data) == b"xyz"


def test_retransmission_is_ignored_and_first_seen_bytes_win() -> None:
    s = TcpStream(overlap=OverlapPolicy.FIRST)
    s.syn(0)
    s.feed(1, b"hello")
    assert not s.feed(1, b"HELLO")  # same range, different bytes: the first ones stay
    assert s.feed(3, b"LLO world")  # overlaps the end: only the new tail is taken
    assert bytes(s.data) == b"hello world"


def test_out_of_order_segments_are_buffered_then_drained() -> None:
    s = TcpStream()
    s.syn(0)
    assert not s.feed(7, b"world")
    assert not s.feed(6, b" ")
    assert bytes(s.data) == b""
    assert s.feed(1, b"hello")
    assert bytes(s.data) == b"hello world"


def test_overlapping_out_of_order_first_seen_wins() -> None:
    s = TcpStream(overlap=OverlapPolicy.FIRST)
    s.syn(0)
    s.feed(4, b"DEF")  # bytes 3..5 (offsets from the first data byte)
    s.feed(3, b"xdefG")  # overlaps the buffered DEF: only 'x' and 'G' are new
    s.feed(1, b"ab")
    assert bytes(s.data) == b"abxDEFG"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (OverlapPolicy.FIRST, b"xello world"),  # the 1-byte fake keeps the first byte
        (OverlapPolicy.LAST, b"hello world"),
        (OverlapPolicy.LONGEST, b"hello world"),
    ],
)
def test_tiny_segment_first_then_the_real_one(policy: OverlapPolicy, expected: bytes) -> None:
    s = TcpStream(overlap=policy)
    s.syn(0)
    s.feed(1, b"x")  # junk on an ACK, or a fake with a bad checksum, at the first data byte
    changed = s.feed(1, b"hello world")
    assert bytes(s.data) == expected
    assert changed and s.rewritten == (policy is not OverlapPolicy.FIRST)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (OverlapPolicy.FIRST, b"hello world"),
        (OverlapPolicy.LAST, b"HELLO world"),  # any later copy wins
        (OverlapPolicy.LONGEST, b"hello world"),  # an equal-size copy does not
    ],
)
def test_equal_size_retransmission_per_policy(policy: OverlapPolicy, expected: bytes) -> None:
    s = TcpStream(overlap=policy)
    s.syn(0)
    s.feed(1, b"hello")
    s.feed(1, b"HELLO")
    s.feed(6, b" world")
    assert bytes(s.data) == expected


def test_longest_replaces_a_short_buffered_piece_out_of_order() -> None:
    s = TcpStream(overlap=OverlapPolicy.LONGEST)
    s.syn(0)
    s.feed(4, b"D")  # a 1-byte piece ahead of a gap
    s.feed(4, b"def")  # the real segment covering it
    s.feed(1, b"abc")
    assert bytes(s.data) == b"abcdef"


def test_segment_starts_are_kept() -> None:
    s = TcpStream()
    s.syn(0)
    s.feed(1, b"EHLO x\r\n")
    s.feed(9, b"STARTTLS\r\n")
    s.feed(19, b"\x16\x03\x01")
    assert s.segment_starts == [0, 8, 18]


def test_sequence_numbers_wrap() -> None:
    s = TcpStream()
    s.syn(0xFFFFFFFE)
    s.feed(0xFFFFFFFF, b"ab")
    s.feed(1, b"cd")
    assert bytes(s.data) == b"abcd"


def test_out_of_order_buffer_is_bounded() -> None:
    s = TcpStream(max_bytes=1000, max_pending=4)
    s.syn(0)
    for i in range(10):
        s.feed(100 + 10 * i, b"x" * 5)
    assert s.dropped_segments == 6
    s.feed(1, b"y" * 2000)  # and the stream stops at max_bytes
    assert len(s.data) == 1000


def test_looks_like_tls_record() -> None:
    assert looks_like_tls_record(b"\x16\x03\x01\x02\x00")
    assert not looks_like_tls_record(b"GET / HTTP/1.1")


# --- find_client_hello per mode ---------------------------------------------------------------

HELLO = client_hello(sni="blocked.example")
ONE_RECORD = record(22, HELLO)


@pytest.mark.parametrize("mode", [NONE, TCP, RECORDS])
def test_plain_hello_seen_in_every_mode(mode: ReassemblyMode) -> None:
    assert find_client_hello(ONE_RECORD, mode).client_hello.sni == "blocked.example"


@pytest.mark.parametrize("mode", [NONE, TCP, RECORDS])
def test_partial_record_needs_data(mode: ReassemblyMode) -> None:
    with pytest.raises(NeedData):
        find_client_hello(ONE_RECORD[:60], mode)


@pytest.mark.parametrize(("mode", "seen"), [(NONE, False), (TCP, False), (RECORDS, True)])
def test_ccs_before_hello(mode: ReassemblyMode, seen: bool) -> None:
    data = CCS + ONE_RECORD
    if seen:
        assert find_client_hello(data, mode).records == 2
    else:
        with pytest.raises(NotClientHello):
            find_client_hello(data, mode)


@pytest.mark.parametrize(("mode", "seen"), [(NONE, False), (TCP, False), (RECORDS, True)])
def test_hello_fragmented_over_records(mode: ReassemblyMode, seen: bool) -> None:
    data = handshake_records(HELLO, 40)
    if seen:
        scan = find_client_hello(data, mode)
        assert scan.client_hello.sni == "blocked.example"
        assert scan.records == -(-len(HELLO) // 40)
    else:
        with pytest.raises(NotClientHello):
            find_client_hello(data, mode)


def test_records_mode_needs_the_next_fragment() -> None:
    data = handshake_records(HELLO, 40)
    with pytest.raises(NeedData):
        find_client_hello(data[:100], RECORDS)


def test_too_many_records_before_hello() -> None:
    data = CCS * (MAX_RECORDS_BEFORE_HELLO + 1) + ONE_RECORD
    with pytest.raises(NotClientHello):
        find_client_hello(data, RECORDS)


def test_non_handshake_record_inside_fragmented_hello_is_malformed() -> None:
    data = handshake_records(HELLO, 40)
    data = data[:45] + CCS + data[45:]
    with pytest.raises(Malformed):
        find_client_hello(data, RECORDS)


@pytest.mark.parametrize("mode", [NONE, TCP, RECORDS])
def test_server_hello_is_not_a_client_hello(mode: ReassemblyMode) -> None:
    with pytest.raises(NotClientHello):
        find_client_hello(record(22, b"\x02\x00\x00\x04abcd"), mode)
