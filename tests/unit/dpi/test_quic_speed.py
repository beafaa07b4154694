"""The QUIC hot path's faster spellings give what their references give (issue 14, speed).

``InitialKeys.derive`` (HMAC from hashed padded-key states) against ``derive_reference``
(``hkdf_extract``/``hkdf_expand_label`` over ``hmac.digest``) and the RFC 9001 Appendix A keys;
the inline CRYPTO varints of ``parse_initial_frames`` against the ``Buffer`` walk.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st
from test_dpi_caches import _outcome, _reference_frames

from tspulab.dpi.quic import parse_initial_frames
from tspulab.dpi.quic_keys import InitialKeys, _hmac, _pads

_VERSIONS = st.sampled_from(
    [0x00000001, 0x6B3343CF, 0xFF000016, 0xFF000017, 0xFF00001C, 0xFF00001D, 0xFF000020, 0xFF000022]
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20), _VERSIONS, st.booleans())
def test_derive_equals_the_hmac_reference(dcid: bytes, version: int, is_client: bool) -> None:
    assert InitialKeys.derive(dcid, version, is_client) == InitialKeys.derive_reference(
        dcid, version, is_client
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.binary(max_size=300))
def test_hmac_from_pads_equals_hmac_digest(key: bytes, message: bytes) -> None:
    pads = _pads(key)
    assert _hmac(pads, message) == hmac.digest(key, message, hashlib.sha256)
    assert _hmac(pads, message) == _hmac(pads, message)  # the cached states are not consumed


def test_derive_gives_the_rfc_9001_appendix_a_keys() -> None:
    keys = InitialKeys.derive(bytes.fromhex("8394c8f03e515708"), 1)
    assert keys.key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert keys.iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert keys.hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


# CRYPTO frames with every varint width of offset and length, cut at every point of the inline
# reading (the walk must fall back to the raising path exactly where the reference raises).
_CRYPTO_PIECES = st.sampled_from(
    [
        b"\x00\x00",
        b"\x01",
        b"\x06\x00\x03abc",
        b"\x06\x3f\x01z",
        b"\x06\x41\x10\x02xy",
        b"\x06\x41\x10\x40\x03abc",
        b"\x06\x05\x40\x02hi",
        b"\x06\x05\x80\x00\x00\x02hi",
        b"\x06\x41\x10\x80\x00\x00\x01q",
        b"\x06\x80\x00\x01\x00\x40\x01q",
        b"\x06\xc0\x00\x00\x00\x00\x00\x00\x01\x01q",
        b"\x40\x06\x41\x00\x01q",
        b"\x06\x41",
        b"\x06\x41\x10",
        b"\x06\x41\x10\x40",
        b"\x06\x05\x7f",
        b"\x06\x05\x40\x09ab",
        b"\x1c\x0a\x00\x02hi",
        b"\x02\x05\x00\x00\x00",
        b"\x08",
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_CRYPTO_PIECES, max_size=10), st.binary(max_size=12))
def test_inline_crypto_varints_equal_the_buffer_walk(pieces: list[bytes], tail: bytes) -> None:
    plain = b"".join(pieces) + tail
    assert _outcome(parse_initial_frames, plain) == _outcome(_reference_frames, plain)
