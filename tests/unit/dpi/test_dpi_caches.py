"""The classify path's caches and fast paths give what the plain computation gives.

Lazy JA3/JA4 on ``ClientHello``, the inline QUIC frame walker against a ``Buffer``-based reference
walker, and an assembler reusing another's derived Initial keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from crafting import client_hello
from hypothesis import given, settings
from hypothesis import strategies as st
from test_quic import (
    DCID,
    V1_CLIENT_INITIAL,
    V2_CLIENT_INITIAL,
    crypto_frame,
    padded,
    protect_initial,
)
from test_quic import client_hello as quic_client_hello

from tspulab.dpi import quic
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.quic import (
    _V2_TYPES,
    Buffer,
    FrameType,
    InitialFrames,
    InitialKeys,
    Malformed,
    NeedData,
    PacketType,
    QuicInitialAssembler,
    QuicLongHeader,
    QuicVersion,
    _is_v2,
    initial_salt,
    parse_initial_frames,
    parse_long_header,
    pull_ack_frame,
    pull_connection_close_frame,
    pull_crypto_frame,
)
from tspulab.dpi.tls import ja4_fingerprint, parse_client_hello_message


def test_fingerprints_are_computed_once_on_first_use() -> None:
    ch = parse_client_hello_message(client_hello("lazy.example"))
    assert ch._ja3 is None and ch._ja3_hash is None and ch._ja4_tail is None
    ja3 = ch.ja3
    assert ch.ja3 is ja3 and ch._ja3 is ja3
    assert ch.ja3_hash == hashlib.md5(ja3.encode()).hexdigest() and ch.ja3_hash is ch._ja3_hash
    tail = ch.ja4_tail
    assert ch.ja4 == "t" + tail and ch.ja4_tail is tail
    assert [ja4_fingerprint(ch, t) for t in "tqd"] == ["t" + tail, "q" + tail, "d" + tail]


def test_cached_fingerprints_do_not_change_equality_or_repr() -> None:
    message = client_hello("eq.example")
    touched, fresh = parse_client_hello_message(message), parse_client_hello_message(message)
    _ = touched.ja3_hash, touched.ja4
    assert touched == fresh and repr(touched) == repr(fresh)


def _reference_frames(plain: bytes) -> InitialFrames:
    """The frame walk with a ``Buffer`` cursor for every frame (the walker before inlining)."""
    buf = Buffer(plain)
    crypto: list[tuple[int, bytes]] = []
    while not buf.eof():
        frame_type = buf.pull_varint()
        if frame_type == FrameType.PADDING:
            rest = plain[buf.pos :]
            buf.pos += len(rest) - len(rest.lstrip(b"\x00"))
        elif frame_type == FrameType.PING:
            pass
        elif frame_type in (FrameType.ACK, FrameType.ACK_ECN):
            pull_ack_frame(buf, ecn=frame_type == FrameType.ACK_ECN)
        elif frame_type == FrameType.CRYPTO:
            crypto.append(pull_crypto_frame(buf))
        elif frame_type == FrameType.CONNECTION_CLOSE:
            pull_connection_close_frame(buf)
        else:
            return InitialFrames(tuple(crypto), frame_type)
    return InitialFrames(tuple(crypto), None)


def _outcome(walk: Callable[[bytes], InitialFrames], plain: bytes) -> object:
    try:
        return walk(plain)
    except DecodeError as err:
        return type(err)


_FRAME_PIECES = st.sampled_from(
    [
        b"\x00",
        b"\x00\x00\x00",
        b"\x01",
        b"\x02\x05\x00\x00\x00",
        b"\x03\x05\x00\x00\x00\x01\x02\x03",
        b"\x06\x00\x03abc",
        b"\x06\x40\x10\x02xy",
        b"\x06\x80\x00\x00\x20\x01z",
        b"\x40\x06\x00\x01q",  # CRYPTO with a two-byte frame type
        b"\x1c\x0a\x00\x02hi",
        b"\x08",
        b"\x06\x05",  # cut CRYPTO
        b"\x06\x00\x09ab",  # CRYPTO data longer than the packet
        b"\xc0\x00",  # cut 8-byte varint
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_FRAME_PIECES, max_size=12), st.binary(max_size=24))
def test_inline_frame_walk_equals_the_buffer_walk(pieces: list[bytes], tail: bytes) -> None:
    plain = b"".join(pieces) + tail
    assert _outcome(parse_initial_frames, plain) == _outcome(_reference_frames, plain)


def test_assembler_reuses_keys_of_another_assembler(monkeypatch: pytest.MonkeyPatch) -> None:
    ch = quic_client_hello("reuse.example")
    first = protect_initial(padded(crypto_frame(0, ch[:30])), DCID, 0)
    second = protect_initial(padded(crypto_frame(0, ch)), DCID, 1)
    derived: list[bytes] = []
    real_derive = InitialKeys.derive

    def counting_derive(dcid: bytes, version: int, is_client: bool = True) -> InitialKeys:
        derived.append(dcid)
        return real_derive(dcid, version, is_client)

    monkeypatch.setattr(quic.InitialKeys, "derive", staticmethod(counting_derive))
    earlier = QuicInitialAssembler()
    assert earlier.feed(first).outcome == "need-more"
    reused = QuicInitialAssembler(keys_from=earlier).feed(second)
    assert derived == [DCID]  # the second assembler derived nothing
    fresh = QuicInitialAssembler().feed(second)
    assert derived == [DCID, DCID]
    assert reused.outcome == fresh.outcome == "complete"
    assert reused.client_hello == fresh.client_hello and reused.ja4 == fresh.ja4
    assert reused.crypto_bytes == fresh.crypto_bytes == len(ch)  # no CRYPTO data carried over


# --- the inlined long-header parser against the cursor-based reference ----------------------------


def _reference_long_header(payload: bytes, offset: int = 0) -> QuicLongHeader:
    """The long-header reading with a ``Buffer`` cursor (before it was inlined), the spec the
    inlined ``quic.parse_long_header`` is checked against."""
    buf = Buffer(payload, offset)
    first = buf.pull_uint8()
    if not first & 0x80:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.3: a short header; no version, no DCID
        # length, so nothing an observer without connection state can parse.
        raise Malformed("short header (first bit 0), not a long-header packet")
    version = buf.pull_uint32()
    dcid_len = buf.pull_uint8()
    dcid = buf.pull_bytes(dcid_len)
    scid_len = buf.pull_uint8()
    scid = buf.pull_bytes(scid_len)
    if version == QuicVersion.NEGOTIATION:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2.1: a list of versions to the end.
        vn = PacketType.VERSION_NEGOTIATION
        return QuicLongHeader(first, version, dcid, scid, vn, False, end=len(payload), start=offset)
    supported = initial_salt(version) is not None
    if not supported:
        # https://www.rfc-editor.org/rfc/rfc8999#section-5.1: only the invariants are known.
        return QuicLongHeader(
            first, version, dcid, scid, (first >> 4) & 3, False, end=len(payload), start=offset
        )
    if dcid_len > 20 or scid_len > 20:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2: at most 20 bytes in these versions.
        raise Malformed(f"connection ID longer than 20 bytes ({dcid_len}/{scid_len})")
    if not first & 0x40:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2: the fixed bit must be 1.
        raise Malformed("fixed bit is 0")
    bits = (first >> 4) & 3
    packet_type = _V2_TYPES[bits] if _is_v2(version) else PacketType(bits)
    if packet_type == PacketType.RETRY:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5: token and tag fill the datagram.
        return QuicLongHeader(
            first, version, dcid, scid, packet_type, True, end=len(payload), start=offset
        )
    token = b""
    if packet_type == PacketType.INITIAL:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2.2: Token Length, Token.
        token = buf.pull_bytes(buf.pull_varint())
    length = buf.pull_varint()  # packet number + protected payload
    end = buf.pos + length
    if end > len(payload):
        raise NeedData(f"Length field says {length} bytes, datagram has {len(payload) - buf.pos}")
    if length < 20:
        # https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2: the sample needs pn(4) + 16 bytes.
        raise Malformed(f"Length {length} too short for a header-protection sample")
    return QuicLongHeader(
        first, version, dcid, scid, packet_type, True, token, buf.pos, end, offset
    )


def _header_outcome(parse: Callable[[bytes, int], QuicLongHeader], data: bytes) -> object:
    try:
        return parse(data, 0)
    except DecodeError as err:
        return type(err)


_REAL_HEADERS = [V1_CLIENT_INITIAL, V2_CLIENT_INITIAL]


@settings(max_examples=500, deadline=None)
@given(
    base=st.sampled_from(_REAL_HEADERS),
    edits=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 1300),
)
def test_inlined_long_header_equals_reference_on_mutations(
    base: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base)
    for pos, value in edits:
        data[pos] = value
    sample = bytes(data[: len(data) - cut])
    assert _header_outcome(parse_long_header, sample) == _header_outcome(
        _reference_long_header, sample
    )


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_inlined_long_header_equals_reference_on_random_bytes(data: bytes) -> None:
    assert _header_outcome(parse_long_header, data) == _header_outcome(_reference_long_header, data)
