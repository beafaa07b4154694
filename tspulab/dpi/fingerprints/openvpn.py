"""OpenVPN's session start, recognised from the first control packet of each side.

Every OpenVPN packet starts with one byte: the opcode in the top 5 bits, the key id in the low 3
(OpenVPN ``ssl_pkt.h``; protocol description in OpenVPN's ``doc/doxygen/network-protocol.txt``).
A session starts with a hard reset, key id 0:

- client: P_CONTROL_HARD_RESET_CLIENT_V2 (7), or _V3 (10) with tls-crypt-v2;
- server: P_CONTROL_HARD_RESET_SERVER_V2 (8).

After the opcode comes the sender's 8-byte session id, then one of three layouts:

=========  ===================================================================================
wrapping   bytes after the session id
=========  ===================================================================================
none       ack count (1) [acked packet ids (4 each), remote session id (8)], message packet id (4)
tls-auth   HMAC (16/20/32/64 by digest), replay packet id (4), net time (4), then as "none"
tls-crypt  replay packet id (4), net time (4), 32-byte tag, then the "none" fields encrypted;
           a V3 reset appends the wrapped client key, whose last 2 bytes give its own length
=========  ===================================================================================

What is checked, on ONE packet (the contract's single-payload detector):

- opcode and key id 0 as above, and the sender direction (client resets from the initiator);
- "none": the client's ack count is 0 and its message packet id 0; the server's ack count is 1,
  acking packet id 0, and its message packet id 0; after that only an early-negotiation TLV list
  (OpenVPN 2.6: type 2 bytes, length 2 bytes) may follow;
- tls-auth: the same fields behind the HMAC, plus a replay packet id of 1 and a plausible net time
  (2004..2052, i.e. 0x40000000..0x98000000);
- tls-crypt: replay packet id with low 16 bits 1 (OpenVPN 2.6 tls-crypt-v2 clients flag the high
  byte, EARLY_NEG_START = 0x0f000000 in ``ssl_pkt.h``; openvpn-tlscrypt.pcap shows 0x0a010001), a
  plausible net time, at least 17 encrypted bytes; V3 also the wrapped-key length trailer.

``confirms_handshake`` is the two-packet check: the server's reset acks the client's session id
(visible unless tls-crypt hides it). Random payloads: the plain layouts need 5+ exact zero bytes
besides the opcode (< 2^-47), tls-auth a 32-bit packet id of 1 (< 2^-39), tls-crypt 16 bits and a
time window (about 2^-25 per packet); measured on random data in the tests. Not recognised:
obfuscated OpenVPN (XOR patches, "scramble", stunnel/TLS wrapping), by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Opcode(IntEnum):
    P_CONTROL_HARD_RESET_CLIENT_V1 = 1
    P_CONTROL_HARD_RESET_SERVER_V1 = 2
    P_CONTROL_SOFT_RESET_V1 = 3
    P_CONTROL_V1 = 4
    P_ACK_V1 = 5
    P_DATA_V1 = 6
    P_CONTROL_HARD_RESET_CLIENT_V2 = 7
    P_CONTROL_HARD_RESET_SERVER_V2 = 8
    P_DATA_V2 = 9
    P_CONTROL_HARD_RESET_CLIENT_V3 = 10
    P_CONTROL_WKC_V1 = 11


_CLIENT_RESETS = (Opcode.P_CONTROL_HARD_RESET_CLIENT_V2, Opcode.P_CONTROL_HARD_RESET_CLIENT_V3)
_HMAC_SIZES = (20, 32, 64, 16)  # SHA1 (the default), SHA256, SHA512, MD5
_TIME_MIN, _TIME_MAX = 0x40000000, 0x98000000
_TAG = 32
_MAX_TLV_BYTES = 64


@dataclass(frozen=True, slots=True)
class OpenVPNMatch:
    opcode: Opcode
    key_id: int
    session_id: bytes
    wrapping: str
    """"none" | "tls-auth" | "tls-crypt"."""
    hmac_size: int
    """tls-auth digest size, else 0."""
    remote_session_id: bytes | None
    """Server reset: the client session id it acknowledges (None when tls-crypt hides it)."""
    transport: str
    """"udp" | "tcp"."""

    @property
    def detail(self) -> str:
        side = "client" if self.opcode in _CLIENT_RESETS else "server"
        return f"openvpn {self.transport} {side} reset {self.wrapping}"


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


def _tlv_tail(data: bytes) -> bool:
    """Empty, or a list of (type 2, length 2, value) entries: the 2.6 early-negotiation TLVs."""
    if len(data) > _MAX_TLV_BYTES:
        return False
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            return False
        pos += 4 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return pos == len(data)


def _reliable_fields(pkt: bytes, pos: int, server: bool) -> bytes | None:
    """The cleartext ack/message fields at `pos`; returns the acked remote session id (server),
    b"" (client), or None if the layout does not fit a first reset."""
    if server:
        if pkt[pos : pos + 5] != b"\x01\x00\x00\x00\x00" or len(pkt) < pos + 17:
            return None
        remote, tail = pkt[pos + 5 : pos + 13], pos + 13
    else:
        if pkt[pos : pos + 1] != b"\x00":
            return None
        remote, tail = b"", pos + 1
    if len(pkt) < tail + 4 or pkt[tail : tail + 4] != b"\x00\x00\x00\x00":
        return None
    return remote if _tlv_tail(pkt[tail + 4 :]) else None


def _plausible_replay(pkt: bytes, pos: int, strict_id: bool) -> bool:
    packet_id, net_time = _u32(pkt, pos), _u32(pkt, pos + 4)
    id_ok = packet_id == 1 if strict_id else packet_id & 0xFFFF == 1
    return id_ok and _TIME_MIN <= net_time <= _TIME_MAX


def _match_packet(pkt: bytes, from_client: bool, transport: str) -> OpenVPNMatch | None:
    if len(pkt) < 14:
        return None
    opcode_value, key_id = pkt[0] >> 3, pkt[0] & 0x07
    server = opcode_value == Opcode.P_CONTROL_HARD_RESET_SERVER_V2
    if key_id or not (opcode_value in _CLIENT_RESETS if from_client else server):
        return None
    opcode = Opcode(opcode_value)
    session_id = pkt[1:9]

    def found(wrapping: str, hmac_size: int, remote: bytes | None) -> OpenVPNMatch:
        return OpenVPNMatch(opcode, 0, session_id, wrapping, hmac_size, remote, transport)

    if opcode != Opcode.P_CONTROL_HARD_RESET_CLIENT_V3:
        remote = _reliable_fields(pkt, 9, server)
        if remote is not None:
            return found("none", 0, remote or None)
        for size in _HMAC_SIZES:
            pos = 9 + size
            if len(pkt) >= pos + 13 and _plausible_replay(pkt, pos, strict_id=True):
                remote = _reliable_fields(pkt, pos + 8, server)
                if remote is not None:
                    return found("tls-auth", size, remote or None)
    # tls-crypt: the encrypted reliable fields are 5 bytes (client: ack count 0, message packet
    # id) or 17 (server: ack count 1, acked id, remote session id, message packet id), plus TLVs.
    encrypted = len(pkt) - (9 + 8 + _TAG)
    least = 17 if server else 5
    if encrypted < least or not _plausible_replay(pkt, 9, strict_id=False):
        return None
    if opcode == Opcode.P_CONTROL_HARD_RESET_CLIENT_V3:
        # the wrapped client key ends with its own 2-byte length (OpenVPN doc/tls-crypt-v2.txt)
        wkc_len = int.from_bytes(pkt[-2:], "big")
        if not 2 + _TAG <= wkc_len <= encrypted - least:
            return None
    elif encrypted > least + _MAX_TLV_BYTES:
        return None
    return found("tls-crypt", 0, None)


def match_udp(payload: bytes, from_client: bool) -> OpenVPNMatch | None:
    """The first control packet of an OpenVPN-over-UDP session, or None. Never raises."""
    return _match_packet(payload, from_client, "udp")


def match_tcp(payload: bytes, from_client: bool) -> OpenVPNMatch | None:
    """OpenVPN over TCP: each packet is preceded by its 2-byte length (OpenVPN ``socket.h``
    stream framing). The first segment must hold the whole first packet; bytes after it (a
    following packet) are allowed. Never raises."""
    if len(payload) < 2:
        return None
    length = int.from_bytes(payload[:2], "big")
    if length < 14 or len(payload) < 2 + length:
        return None
    return _match_packet(payload[2 : 2 + length], from_client, "tcp")


def confirms_handshake(client: OpenVPNMatch, server: OpenVPNMatch) -> bool:
    """Two packets: a client reset and the server reset that answers it (same wrapping, and the
    server acks the client's session id whenever that field is in clear text)."""
    if client.opcode not in _CLIENT_RESETS:
        return False
    if server.opcode != Opcode.P_CONTROL_HARD_RESET_SERVER_V2:
        return False
    if client.wrapping != server.wrapping or client.hmac_size != server.hmac_size:
        return False
    return server.remote_session_id in (None, client.session_id) and (
        server.remote_session_id is not None or server.wrapping == "tls-crypt"
    )
