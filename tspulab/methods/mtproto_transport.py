"""MTProto's obfuscated2 transport, as Telegram's clients and the 2018 MTProto proxies spoke it.

From https://core.telegram.org/mtproto/mtproto-transports ("Transport obfuscation"): the client
opens the connection with 64 bytes, random except that

- byte 0 is not 0xef (the abridged transport's plain marker), bytes 0..4 are none of
  "HEAD", "POST", "GET ", "OPTI", 0xdddddddd, 0xeeeeeeee, 0x16030102 (a TLS record), and
  bytes 4..8 are not zero (so no plain transport or protocol is mistaken for it);
- bytes 56..60 carry the protocol tag of the framing inside: 0xefefefef abridged, 0xeeeeeeee
  intermediate, 0xdddddddd padded intermediate; bytes 60..62 the DC number (a proxy's client
  says which data centre it wants, little-endian, negative for a media DC).

Bytes 8..40 are the AES-256-CTR key and bytes 40..56 the counter's initial block of the client's
direction; the same 48 bytes reversed give the key and block of the server's direction. The
client encrypts the whole 64 bytes with its stream and sends the first 56 as they were and the
last 8 encrypted: the server derives the same keys from the plain bytes, decrypts the 64 bytes
and finds the tag. An MTProto proxy's secret (16 bytes, the `secret=` of a tg://proxy link) is
mixed into both keys: key = SHA-256(key bytes + secret); without the secret the tag decrypts to
noise and the proxy knows the client is not one of its users.

Nothing on the wire is plain from the first byte on: the fully-encrypted traffic that
docs/tspu-behaviour.md §5 says the 2025 heuristics look for.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

INIT_SIZE = 64
ABRIDGED = b"\xef\xef\xef\xef"
INTERMEDIATE = b"\xee\xee\xee\xee"
PADDED_INTERMEDIATE = b"\xdd\xdd\xdd\xdd"
PROTOCOL_TAGS = {"abridged": ABRIDGED, "intermediate": INTERMEDIATE}
"""The framings this module speaks (padded intermediate is recognised, not spoken)."""
SECRET_SIZE = 16

_FORBIDDEN_STARTS = (
    b"HEAD",
    b"POST",
    b"GET ",
    b"OPTI",
    b"\xdd\xdd\xdd\xdd",
    b"\xee\xee\xee\xee",
    b"\x16\x03\x01\x02",
)


class TransportError(ValueError):
    """A peer's init or frame is not what the transport allows (a wrong secret, a bad tag)."""


def _ctr(key: bytes, iv: bytes) -> CipherContext:
    # AES-CTR with the 16 bytes as the initial counter block, incremented big-endian: the
    # same stream as OpenSSL's AES-256-CTR, which Telegram's clients use.
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


def _keys(material: bytes, secret: bytes | None) -> tuple[bytes, bytes]:
    key, iv = material[:32], material[32:48]
    if secret:
        key = hashlib.sha256(key + secret).digest()
    return key, iv


@dataclass
class Streams:
    """The two AES-CTR streams of one side of a connection: `encrypt` what it sends, `decrypt`
    what it receives (CTR: both are the same keystream operation)."""

    send: CipherContext
    receive: CipherContext
    tag: bytes
    dc: int

    def encrypt(self, data: bytes) -> bytes:
        return self.send.update(data)

    def decrypt(self, data: bytes) -> bytes:
        return self.receive.update(data)


def random_init(tag: bytes, dc: int = 0) -> bytes:
    """A fresh 64-byte init in the clear (before its last 8 bytes are encrypted)."""
    while True:
        init = bytearray(os.urandom(INIT_SIZE))
        if init[0] == 0xEF or bytes(init[:4]) in _FORBIDDEN_STARTS or init[4:8] == bytes(4):
            continue
        init[56:60] = tag
        init[60:62] = struct.pack("<h", dc)
        return bytes(init)


def client_handshake(
    tag: bytes = INTERMEDIATE, *, secret: bytes | None = None, dc: int = 2
) -> tuple[bytes, Streams]:
    """The 64 bytes a client sends and its streams. `secret`: an MTProto proxy's secret (None
    or empty: a direct connection to a data centre, as a proxy's own connection to it is)."""
    init = random_init(tag, dc)
    send_key, send_iv = _keys(init[8:56], secret)
    receive_key, receive_iv = _keys(init[8:56][::-1], secret)
    send = _ctr(send_key, send_iv)
    encrypted = send.update(init)
    wire = init[:56] + encrypted[56:64]
    return wire, Streams(send, _ctr(receive_key, receive_iv), tag, dc)


def server_handshake(wire: bytes, *, secret: bytes | None = None) -> Streams:
    """The server's streams from a client's 64 bytes; TransportError when the decrypted tag is
    no protocol's (the client used another secret, or is not speaking obfuscated2)."""
    if len(wire) != INIT_SIZE:
        raise TransportError(f"init is {len(wire)} bytes, not {INIT_SIZE}")
    receive_key, receive_iv = _keys(wire[8:56], secret)
    send_key, send_iv = _keys(wire[8:56][::-1], secret)
    receive = _ctr(receive_key, receive_iv)
    plain = receive.update(wire)
    tag = plain[56:60]
    if tag not in (ABRIDGED, INTERMEDIATE, PADDED_INTERMEDIATE):
        raise TransportError(f"unknown protocol tag {tag.hex()} (wrong secret?)")
    (dc,) = struct.unpack("<h", plain[60:62])
    return Streams(_ctr(send_key, send_iv), receive, tag, dc)


# --- framing inside the obfuscated stream --------------------------------------------------------


def frame(tag: bytes, payload: bytes) -> bytes:
    """One packet in the framing `tag` names (payloads are multiples of 4 bytes for abridged)."""
    if tag == ABRIDGED:
        if len(payload) % 4:
            raise TransportError("abridged payloads are a multiple of 4 bytes")
        words = len(payload) // 4
        header = bytes([words]) if words < 0x7F else b"\x7f" + words.to_bytes(3, "little")
        return header + payload
    return struct.pack("<I", len(payload)) + payload


class FrameReader:
    """Splits a decrypted byte stream into payloads of the framing `tag` names."""

    def __init__(self, tag: bytes, limit: int = 1 << 26) -> None:
        self.tag = tag
        self.limit = limit
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames: list[bytes] = []
        while True:
            size, header = self._header()
            if size is None or len(self.buffer) < header + size:
                return frames
            frames.append(bytes(self.buffer[header : header + size]))
            del self.buffer[: header + size]

    def _header(self) -> tuple[int | None, int]:
        b = self.buffer
        if self.tag == ABRIDGED:
            if not b:
                return None, 0
            if b[0] < 0x7F:
                return b[0] * 4, 1
            if len(b) < 4:
                return None, 0
            return int.from_bytes(b[1:4], "little") * 4, 4
        if len(b) < 4:
            return None, 0
        size = struct.unpack("<I", b[:4])[0] & 0x7FFFFFFF  # the top bit asks for a quick ack
        if size > self.limit:
            raise TransportError(f"frame of {size} bytes is over the limit {self.limit}")
        return size, 4


# --- the lab's request and reply ---------------------------------------------------------------
# Inside the frames the lab speaks MTProto's unencrypted-message layout (auth_key_id 0, a
# message id, the body's length, the body) with a constructor of its own: a real data centre's
# key exchange (req_pq_multi and on) is not what the lab measures, the round trip and the bytes
# through the proxy are.

ECHO_REQUEST = 0x7A5B1AB0
"""The lab's constructor: "reply with this many bytes" (no such constructor exists in Telegram's
schema; the DC answers nothing else)."""
_HEADER = struct.Struct("<qqi")
_ECHO = struct.Struct("<IiI")  # constructor, reply size, a request number


def echo_request(size: int, number: int = 0) -> bytes:
    body = _ECHO.pack(ECHO_REQUEST, size, number)
    return _HEADER.pack(0, _message_id(), len(body)) + body


def parse_echo_request(payload: bytes) -> tuple[int, int]:
    """(reply size, request number) of a lab request; TransportError for anything else."""
    if len(payload) < _HEADER.size + _ECHO.size:
        raise TransportError(f"request of {len(payload)} bytes is too short")
    auth_key_id, _, length = _HEADER.unpack_from(payload)
    constructor, size, number = _ECHO.unpack_from(payload, _HEADER.size)
    if auth_key_id != 0 or constructor != ECHO_REQUEST or length != _ECHO.size or size < 0:
        raise TransportError("not a lab echo request")
    return size, number


def _message_id() -> int:
    # Unix time in the top 32 bits, a multiple of 4 (a client's message id).
    return (int(time.time() * 2**32)) & ~3
