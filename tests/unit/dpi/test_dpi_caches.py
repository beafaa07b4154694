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
from test_quic import DCID, crypto_frame, padded, protect_initial
from test_quic import client_hello as quic_client_hello

from tspulab.dpi import quic
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.quic import (
    Buffer,
    FrameType,
    InitialFrames,
    InitialKeys,
    QuicInitialAssembler,
    parse_initial_frames,
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
