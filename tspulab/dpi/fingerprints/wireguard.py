"""WireGuard message types, recognised from one UDP payload (WireGuard whitepaper §5.4).

Every message starts with a 1-byte type and 3 reserved bytes that must be zero, then a layout
whose size is fixed for the handshake messages (whitepaper §5.4.2-5.4.7,
https://www.wireguard.com/papers/wireguard.pdf):

============================  ====  ===========================================================
message                       type  size on the wire
============================  ====  ===========================================================
handshake initiation          1     148 bytes (sender index, ephemeral, static, timestamp, macs)
handshake response            2     92 bytes
cookie reply                  3     64 bytes
transport data                4     16-byte header + padded plaintext + 16-byte tag: >= 32 bytes
                                    (32 is a keepalive); a multiple of 16, except that padding
                                    stops at the interface MTU (Linux ``send.c``
                                    ``calculate_skb_padding``), so a full-MTU packet need not be
============================  ====  ===========================================================

Checked: the type, the three zero bytes and the size; data packets of 1312 bytes or more (plaintext
>= 1280, IPv6's minimum MTU) are accepted at any length, as wireguard.pcap's 1452-byte packets
(MTU 1420) require. One packet suffices. Random data matches
with probability 2^-8 (type) x 2^-24 (reserved) x P(size): about 2^-32 for a payload of exactly
148 bytes, about 2^-36 for random lengths. Direction is reported, not required: after two minutes
either peer may start a new handshake (whitepaper §6.1), so "initiation from the server" is legal.

Not matched on purpose: Cloudflare WARP (nDPI's cloudflare-warp.pcap) sends 0xc1/0xc2/0xc4 type
bytes, a client id in the reserved bytes and a 194-byte initiation; AmneziaWG changes types and
sizes. Both are variants a censor must fingerprint separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class MessageType(IntEnum):
    HANDSHAKE_INITIATION = 1
    HANDSHAKE_RESPONSE = 2
    COOKIE_REPLY = 3
    TRANSPORT_DATA = 4


_FIXED_SIZES = {
    MessageType.HANDSHAKE_INITIATION: 148,
    MessageType.HANDSHAKE_RESPONSE: 92,
    MessageType.COOKIE_REPLY: 64,
}


_MTU_PADDED_MIN = 32 + 1280


@dataclass(frozen=True, slots=True)
class WireGuardMatch:
    message_type: MessageType
    sender_index: int
    """Initiation/response: the sender's index; cookie/data: the receiver's index."""
    from_client: bool
    detail: str
    """e.g. "wg initiation"."""


def match(payload: bytes, from_client: bool) -> WireGuardMatch | None:
    """A WireGuard message, or None. Never raises."""
    if len(payload) < 32 or payload[1:4] != b"\x00\x00\x00":
        return None
    kind = payload[0]
    if kind not in MessageType._value2member_map_:
        return None
    message_type = MessageType(kind)
    size = _FIXED_SIZES.get(message_type)
    if size is not None:
        if len(payload) != size:
            return None
    elif len(payload) % 16 and len(payload) < _MTU_PADDED_MIN:
        return None
    index = int.from_bytes(payload[4:8], "little")
    name = message_type.name.lower().replace("handshake_", "").replace("_", " ")
    return WireGuardMatch(message_type, index, from_client, f"wg {name}")
