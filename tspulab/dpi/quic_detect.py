"""Is this UDP flow QUIC, when no client Initial can be decrypted? Header shapes, no keys.

quic.py reads a client Initial down to its ClientHello. That covers most flows, but a censor (and
nDPI, whose labels the tests compare with) also calls a flow QUIC from what the clear-text header
says, in these cases:

- a client Initial of a version whose keys are unknown: reserved versions 0x?a?a?a?a that force
  version negotiation (RFC 9000 §15), unknown IETF drafts, Meta's mvfst, Google's Q05x/T05x;
- a Version Negotiation packet (version 0, RFC 8999 §6) answering one;
- 0-RTT packets arriving before (or without) the Initial;
- flows picked up after the handshake: only short-header packets. Like nDPI (``may_be_sh`` in
  its quic.c), three client packets to port 443 with the fixed bit set, the same first 8 bytes of
  Destination Connection ID and different last bytes;
- a Google QUIC server's REJ (rejection) message from port 443 in a one-sided capture.

A client Initial's shape (RFC 9000 §14.1, §17.2.2): a UDP payload of at least 1200 bytes, long
header with the fixed bit, packet type Initial (type bits 00, or 01 in QUIC v2, RFC 9369 §3.2),
connection IDs of at most 20 bytes. Bare version numbers are weak evidence on their own (any byte
with the top bit set starts "some long header"; IKE was once misread so), hence the shape checks.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION_2 = 0x6B3343CF
MIN_CLIENT_INITIAL = 1200
_MAX_CID = 20
_SH_DCID_PREFIX = 8


def quic_family(version: int) -> str | None:
    """The family of a QUIC wire version (IANA QUIC version registry), None if not QUIC."""
    if version == 1:
        return "v1"
    if version == VERSION_2:
        return "v2"
    if version >> 8 == 0xFF0000:
        return f"draft-{version & 0xFF}"
    if version & 0x0F0F0F0F == 0x0A0A0A0A:
        return "reserved"  # RFC 9000 §15: forces version negotiation
    if version & 0xFFFFF000 == 0xFACEB000:
        return "mvfst"
    tag = version.to_bytes(4, "big")
    if tag[:2] in (b"Q0", b"T0") and tag[2:].isdigit():
        return "gquic"
    return None


def is_reserved(version: int) -> bool:
    return version & 0x0F0F0F0F == 0x0A0A0A0A


def _cids_fit(payload: bytes) -> bool:
    """Both connection-ID lengths at most 20 and inside the datagram."""
    if len(payload) < 7:
        return False
    dcid_len = payload[5]
    scid_at = 6 + dcid_len
    return dcid_len <= _MAX_CID and scid_at < len(payload) and payload[scid_at] <= _MAX_CID


def _version(payload: bytes) -> int:
    return int.from_bytes(payload[1:5], "big")


def client_initial_version(payload: bytes) -> int | None:
    """The version of a datagram shaped like a client Initial (see the module docstring)."""
    if len(payload) < MIN_CLIENT_INITIAL or payload[0] & 0xC0 != 0xC0:
        return None
    version = _version(payload)
    family = quic_family(version)
    if family is None:
        return None
    type_bits = (payload[0] >> 4) & 0x03
    if family == "v2":
        if type_bits != 1:
            return None
    elif family != "gquic" and type_bits != 0:
        return None
    ietf_layout = family != "gquic" or version >= 0x51303530 or version >> 8 == 0x543035
    if ietf_layout and not _cids_fit(payload):  # Q046's header packs the CID lengths otherwise
        return None
    return version


def is_version_negotiation(payload: bytes) -> bool:
    """RFC 8999 §6: long-header bit, version 0, CIDs, then a non-empty list of 4-byte versions."""
    if len(payload) < 11 or not payload[0] & 0x80 or payload[1:5] != b"\x00\x00\x00\x00":
        return False
    if not _cids_fit(payload):
        return False
    listed = len(payload) - (7 + payload[5] + payload[6 + payload[5]])
    return listed >= 4 and listed % 4 == 0


def zero_rtt_version(payload: bytes) -> int | None:
    """The version of a 0-RTT long-header packet (type 01, or 10 in QUIC v2), else None."""
    if len(payload) < 7 or payload[0] & 0xC0 != 0xC0:
        return None
    version = _version(payload)
    family = quic_family(version)
    if family is None or family == "gquic":
        return None
    type_bits = (payload[0] >> 4) & 0x03
    if type_bits != (2 if family == "v2" else 1) or not _cids_fit(payload):
        return None
    return version


def is_gquic_rejection(payload: bytes, sport: int) -> bool:
    """A Google QUIC server REJ from port 443 (public flags 0x08: 8-byte CID, no version)."""
    if sport != 443 or len(payload) < 38 or payload[0] != 0x08:
        return False
    return b"REJ" in payload[22:38]


@dataclass(slots=True)
class ShortHeaderTracker:
    """nDPI's short-header heuristic: three client packets to port 443, fixed bit set, the same
    8-byte DCID prefix, a different last byte each time (encrypted packets, not repeats)."""

    prefix: bytes = b""
    last_byte: int = -1
    seen: int = 0

    def feed(self, payload: bytes, dport: int) -> bool:
        """True once the third matching packet arrives."""
        if dport != 443 or len(payload) < 1 + _SH_DCID_PREFIX or not payload[0] & 0x40:
            return False
        if payload[0] & 0x80:
            return False  # a long header is not a short-header packet
        prefix = payload[1 : 1 + _SH_DCID_PREFIX]
        if self.seen and (prefix != self.prefix or payload[-1] == self.last_byte):
            self.seen = 0
        if not self.seen:
            self.prefix = prefix
        self.seen += 1
        self.last_byte = payload[-1]
        return self.seen >= 3


def google_quic_version(payload: bytes) -> int | None:
    """The version tag of a Google QUIC (Q0xx, before Q046) client packet, or None.

    gQUIC's public header (Chromium's QUIC wire layout, "public flags"): flags byte with the
    version bit 0x01 and, with bit 0x08, an 8-byte connection ID, then the tag "Q0dd" in ASCII.
    Q046 and later use an IETF-style long header and reach ``quic.parse_long_header`` instead.
    The CHLO's SNI tag is not read: gQUIC left Chrome in 2021, before the TSPU's QUIC rules.
    """
    flags = payload[0]
    if not flags & 0x01 or flags & 0x80:
        return None
    start = 9 if flags & 0x08 else 1
    tag = payload[start : start + 4]
    if len(tag) == 4 and tag[:2] == b"Q0" and tag[2:].isdigit():
        return int.from_bytes(tag, "big")
    return None
