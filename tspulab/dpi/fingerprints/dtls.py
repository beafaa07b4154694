"""DTLS ClientHello (RFC 6347 §4.2.2 for 1.2, RFC 4347 for 1.0), as sent by WebRTC and Snowflake.

A DTLS record header is content type (1), version (2), epoch (2), sequence number (6), length (2);
the handshake header adds message_seq (2), fragment_offset (3) and fragment_length (3) to TLS's
type and length; the ClientHello body adds a cookie after the session id
(https://www.rfc-editor.org/rfc/rfc6347#section-4.2.2). With those stripped the body is a TLS
ClientHello, which tls.parse_client_hello_message parses (so SNI, ALPN, groups, JA3/JA4 come from
one parser). The TSPU's Snowflake blocks keyed on DTLS handshake details (tspu-behaviour.md §5.2).

Checked on ONE datagram: record type 22 (handshake), record version 0xfeff (DTLS 1.0), 0xfefd
(1.2; DTLS 1.3 clients also use it, RFC 9147 §5.3), 0xfefc (1.3 as some stacks write it) or 0x0100
(OpenSSL's pre-RFC ``DTLS1_BAD_VER``, still spoken by Cisco AnyConnect), epoch 0, handshake
type 1, message_seq 0 or 1 (1 after a HelloVerifyRequest), fragment within the message,
client_version one of the same versions. An unfragmented ClientHello must also parse; a
fragment is reported with ``client_hello=None``.

``match_records`` recognises DTLS without a ClientHello (a flow picked up after the handshake):
the datagram is exactly a run of DTLS records (RFC 6347 §4.1: type 20-25, a DTLS version, 48-bit
sequence number, a length that ends each record where the next begins or at the datagram's end).
Random data fits that with probability below 2^-24 per record.
"""

from __future__ import annotations

from dataclasses import dataclass

from tspulab.dpi.errors import DecodeError
from tspulab.dpi.tls import ClientHello, ja4_fingerprint, parse_client_hello_message

_VERSIONS = (0xFEFF, 0xFEFD, 0xFEFC, 0x0100)
_RECORD_TYPES = range(
    20, 26
)  # change_cipher_spec, alert, handshake, application_data, heartbeat, tls12_cid
_MAX_RECORDS = 16
_RECORD_HEADER = 13
_HANDSHAKE_HEADER = 12


@dataclass(frozen=True, slots=True)
class DTLSMatch:
    record_version: int
    client_version: int
    message_seq: int
    cookie: bytes
    fragmented: bool
    client_hello: ClientHello | None
    """Parsed when the whole ClientHello is in this datagram."""
    ja4: str | None
    """JA4 with transport "d"."""


def _strip_cookie(body: bytes) -> tuple[bytes, bytes] | None:
    """(TLS-form body, cookie) from a DTLS ClientHello body, or None if too short."""
    pos = 2 + 32
    if len(body) < pos + 1:
        return None
    pos += 1 + body[pos]  # session id
    if len(body) < pos + 1:
        return None
    cookie_len = body[pos]
    cookie = body[pos + 1 : pos + 1 + cookie_len]
    if len(cookie) != cookie_len:
        return None
    return body[:pos] + body[pos + 1 + cookie_len :], cookie


def match_client_hello(payload: bytes) -> DTLSMatch | None:
    """The DTLS ClientHello at the start of `payload`, or None. Never raises."""
    if len(payload) < _RECORD_HEADER + _HANDSHAKE_HEADER + 2:
        return None
    record_version = int.from_bytes(payload[1:3], "big")
    if payload[0] != 22 or record_version not in _VERSIONS or payload[3:5] != b"\x00\x00":
        return None
    record_len = int.from_bytes(payload[11:13], "big")
    hs = payload[_RECORD_HEADER : _RECORD_HEADER + record_len]
    if len(hs) < _HANDSHAKE_HEADER + 2 or hs[0] != 1:
        return None
    length = int.from_bytes(hs[1:4], "big")
    message_seq = int.from_bytes(hs[4:6], "big")
    frag_offset = int.from_bytes(hs[6:9], "big")
    frag_length = int.from_bytes(hs[9:12], "big")
    client_version = int.from_bytes(hs[12:14], "big")
    if message_seq > 1 or frag_offset + frag_length > length or client_version not in _VERSIONS:
        return None
    if frag_length > len(hs) - _HANDSHAKE_HEADER:
        return None
    if frag_offset != 0 or frag_length != length:
        return DTLSMatch(record_version, client_version, message_seq, b"", True, None, None)
    stripped = _strip_cookie(hs[_HANDSHAKE_HEADER : _HANDSHAKE_HEADER + length])
    if stripped is None:
        return None
    body, cookie = stripped
    try:
        ch = parse_client_hello_message(b"\x01" + len(body).to_bytes(3, "big") + body)
    except DecodeError:
        return None
    ja4 = ja4_fingerprint(ch, "d")
    return DTLSMatch(record_version, client_version, message_seq, cookie, False, ch, ja4)


def match_records(payload: bytes) -> int | None:
    """The record version if ``payload`` is exactly a run of DTLS records, else None."""
    pos = 0
    version = None
    for _ in range(_MAX_RECORDS):
        if len(payload) - pos < _RECORD_HEADER:
            return None
        record_version = int.from_bytes(payload[pos + 1 : pos + 3], "big")
        if payload[pos] not in _RECORD_TYPES or record_version not in _VERSIONS:
            return None
        if version is not None and record_version != version:
            return None
        version = record_version
        length = int.from_bytes(payload[pos + 11 : pos + 13], "big")
        pos += _RECORD_HEADER + length
        if pos == len(payload) and length:
            return version
        if pos > len(payload) or not length:
            return None
    return None
