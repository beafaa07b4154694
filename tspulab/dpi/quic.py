"""QUIC client Initial packets as a DPI box sees them: header, decryption, CRYPTO data, ClientHello.

A censor that filters QUIC by SNI (TSPU from July 2023 at the latest, tspu-behaviour.md §5.3) does
what any on-path observer can: derive the Initial keys from the client's Destination Connection ID
(RFC 9001 §5.2; the salt is public), remove header protection, open the AEAD, walk the frames and
collect CRYPTO data by offset until the TLS ClientHello is contiguous from offset 0. Clients may
split the ClientHello across several Initial packets, coalesce packets in one datagram and reorder
CRYPTO frames inside a packet (Chrome's "chaos protection"); the assembler handles all three.

Versions: QUIC v1 (RFC 9000/9001), QUIC v2 (RFC 9369: other salt, HKDF labels and packet-type
bits) and the IETF drafts 22-34 (their own salts). Google QUIC (Q0xx) is not IETF QUIC: it is
reported as "not-initial", never decrypted.

Parsing follows aioquic's style: a cursor with ``pull_*`` functions, RFC links at each branch.
Cryptography comes from the ``cryptography`` package (AES-ECB for the header-protection mask,
AES-128-GCM for the payload, HMAC-SHA256 for HKDF).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag

from tspulab.dpi.errors import DecodeError, Malformed, NeedData
from tspulab.dpi.quic_keys import (  # re-exported: callers import them from quic
    InitialKeys,
    Opener,
    QuicVersion,
    _is_v2,
    initial_salt,
)
from tspulab.dpi.tls import ClientHello, parse_client_hello_message


class PacketType(IntEnum):
    """Long-header packet types, numbered as in QUIC v1 (v2 bits are mapped onto these)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3
    VERSION_NEGOTIATION = 4


# https://www.rfc-editor.org/rfc/rfc9369#section-3.2: v2 rotates the two type bits.
_V2_TYPES = {
    1: PacketType.INITIAL,
    2: PacketType.ZERO_RTT,
    3: PacketType.HANDSHAKE,
    0: PacketType.RETRY,
}


class Buffer:
    """A read cursor over bytes; every pull raises NeedData when the bytes run out."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def eof(self) -> bool:
        return self.pos >= len(self.data)

    def pull_bytes(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise NeedData(f"need {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def pull_uint8(self) -> int:
        if self.pos >= len(self.data):
            raise NeedData(f"need 1 byte at offset {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def pull_uint32(self) -> int:
        return int.from_bytes(self.pull_bytes(4), "big")

    def pull_varint(self) -> int:
        """https://www.rfc-editor.org/rfc/rfc9000#section-16: 2-bit length prefix, 1/2/4/8 bytes."""
        first = self.pull_uint8()
        length = 1 << (first >> 6)
        value = first & 0x3F
        for byte in self.pull_bytes(length - 1):
            value = (value << 8) | byte
        return value


@dataclass(frozen=True, slots=True)
class QuicLongHeader:
    """One long-header packet at the start of `payload[offset:]` (RFC 9000 §17.2)."""

    first_byte: int
    """As on the wire, i.e. still header-protected (the low 4 bits are masked)."""
    version: int
    dcid: bytes
    scid: bytes
    packet_type: int
    """A ``PacketType``, v1 numbering; v2 type bits are mapped (RFC 9369 §3.2)."""
    supported: bool
    """True if `version` is one whose Initial keys this module can derive."""
    token: bytes = b""
    """Initial packets only: the address-validation token."""
    pn_offset: int = 0
    """Where the (protected) packet number starts, relative to the datagram."""
    end: int = 0
    """Where this packet ends in the datagram (coalesced packets follow; RFC 9000 §12.2)."""
    start: int = 0
    """Where this packet starts in the datagram."""


def parse_long_header(payload: bytes, offset: int = 0) -> QuicLongHeader:
    """Parse the long header at `payload[offset:]`. Raises NeedData / Malformed (not QUIC).

    Indexes the bytes directly rather than through ``Buffer`` (it runs on every long-header
    datagram of an undecided UDP flow); a hypothesis test checks it against the cursor-based
    reading it replaced, outcome for outcome (tests/unit/dpi/test_dpi_caches.py).
    """
    size = len(payload)
    if offset >= size:
        raise NeedData(f"need 1 byte at offset {offset}")
    first = payload[offset]
    if not first & 0x80:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.3: a short header; no version, no DCID
        # length, so nothing an observer without connection state can parse.
        raise Malformed("short header (first bit 0), not a long-header packet")
    pos = offset + 5
    if pos > size:
        raise NeedData(f"need 4 bytes at offset {offset + 1}, have {size - offset - 1}")
    version = int.from_bytes(payload[offset + 1 : pos], "big")
    if pos >= size:
        raise NeedData(f"need 1 byte at offset {pos}")
    dcid_len = payload[pos]
    pos += 1
    if pos + dcid_len > size:
        raise NeedData(f"need {dcid_len} bytes at offset {pos}, have {size - pos}")
    dcid = payload[pos : pos + dcid_len]
    pos += dcid_len
    if pos >= size:
        raise NeedData(f"need 1 byte at offset {pos}")
    scid_len = payload[pos]
    pos += 1
    if pos + scid_len > size:
        raise NeedData(f"need {scid_len} bytes at offset {pos}, have {size - pos}")
    scid = payload[pos : pos + scid_len]
    pos += scid_len
    if version == QuicVersion.NEGOTIATION:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2.1: a list of versions to the end.
        vn = PacketType.VERSION_NEGOTIATION
        return QuicLongHeader(first, version, dcid, scid, vn, False, end=size, start=offset)
    if initial_salt(version) is None:
        # https://www.rfc-editor.org/rfc/rfc8999#section-5.1: only the invariants are known.
        return QuicLongHeader(
            first, version, dcid, scid, (first >> 4) & 3, False, end=size, start=offset
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
        return QuicLongHeader(first, version, dcid, scid, packet_type, True, end=size, start=offset)
    token = b""
    if packet_type == PacketType.INITIAL:
        # https://www.rfc-editor.org/rfc/rfc9000#section-17.2.2: Token Length, Token.
        token_len, pos = _pull_varint(payload, pos)
        if pos + token_len > size:
            raise NeedData(f"need {token_len} bytes at offset {pos}, have {size - pos}")
        token = payload[pos : pos + token_len]
        pos += token_len
    length, pos = _pull_varint(payload, pos)  # packet number + protected payload
    end = pos + length
    if end > size:
        raise NeedData(f"Length field says {length} bytes, datagram has {size - pos}")
    if length < 20:
        # https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2: the sample needs pn(4) + 16 bytes.
        raise Malformed(f"Length {length} too short for a header-protection sample")
    return QuicLongHeader(first, version, dcid, scid, packet_type, True, token, pos, end, offset)


def matches_2022_quic_rule(dst_port: int, payload: bytes) -> bool:
    """The March-2022 TSPU rule (tspu-behaviour.md §5.3): UDP dst 443, payload >= 1001 B,
    bytes 1..4 == 00000001 (the QUIC v1 version field). The first byte is not looked at."""
    return dst_port == 443 and len(payload) >= 1001 and payload[1:5] == b"\x00\x00\x00\x01"


# --- frames: https://www.rfc-editor.org/rfc/rfc9000#section-19 ---------------------------------


class FrameType(IntEnum):
    """The frame types allowed in Initial packets (RFC 9000 §12.4, Table 3)."""

    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    CRYPTO = 0x06
    CONNECTION_CLOSE = 0x1C


# Plain ints for the frame loop (an IntEnum comparison costs an attribute lookup each time).
_PADDING = int(FrameType.PADDING)
_PING = int(FrameType.PING)
_ACK = int(FrameType.ACK)
_ACK_ECN = int(FrameType.ACK_ECN)
_CRYPTO = int(FrameType.CRYPTO)
_CONNECTION_CLOSE = int(FrameType.CONNECTION_CLOSE)


@dataclass(frozen=True, slots=True)
class InitialFrames:
    """What one decrypted Initial payload holds, as far as it could be walked."""

    crypto: tuple[tuple[int, bytes], ...]
    """CRYPTO frames as (offset, data), in wire order."""
    stopped_at: int | None
    """Type of the first frame that is not allowed in an Initial (walking stops there), or None."""


def pull_ack_frame(buf: Buffer, ecn: bool) -> None:
    """https://www.rfc-editor.org/rfc/rfc9000#section-19.3: skipped, only its extent matters."""
    buf.pull_varint()  # largest acknowledged
    buf.pull_varint()  # ack delay
    range_count = buf.pull_varint()
    buf.pull_varint()  # first ack range
    if range_count > len(buf.data):
        raise Malformed(f"ACK range count {range_count} larger than the packet")
    for _ in range(range_count):
        buf.pull_varint()  # gap
        buf.pull_varint()  # ack range length
    if ecn:  # https://www.rfc-editor.org/rfc/rfc9000#section-19.3.2: ECT0, ECT1, ECN-CE counts
        for _ in range(3):
            buf.pull_varint()


def pull_crypto_frame(buf: Buffer) -> tuple[int, bytes]:
    """https://www.rfc-editor.org/rfc/rfc9000#section-19.6: offset, length, data."""
    offset = buf.pull_varint()
    data = buf.pull_bytes(buf.pull_varint())
    return offset, data


def pull_connection_close_frame(buf: Buffer) -> None:
    """https://www.rfc-editor.org/rfc/rfc9000#section-19.19 (transport variant, 0x1c)."""
    buf.pull_varint()  # error code
    buf.pull_varint()  # frame type
    buf.pull_bytes(buf.pull_varint())  # reason phrase


def _pull_varint(data: bytes, pos: int) -> tuple[int, int]:
    """``Buffer.pull_varint`` without the cursor object: (value, next position)."""
    if pos >= len(data):
        raise NeedData(f"need 1 byte at offset {pos}")
    first = data[pos]
    if first < 0x40:
        return first, pos + 1
    end = pos + (1 << (first >> 6))
    if end > len(data):
        raise NeedData(
            f"need {end - pos - 1} bytes at offset {pos + 1}, have {len(data) - pos - 1}"
        )
    # The two length bits are the top bits of the first byte: mask them off the whole integer.
    return int.from_bytes(data[pos:end], "big") & ((1 << (8 * (end - pos) - 2)) - 1), end


_NOT_ZERO = re.compile(rb"[^\x00]")


def parse_initial_frames(plain: bytes) -> InitialFrames:
    """Walk the frames of a decrypted Initial payload. Raises NeedData / Malformed.

    The hot frames (PADDING, PING, CRYPTO: Chrome's chaos protection sends dozens of small CRYPTO
    and PING frames per packet) are read inline, one-byte frame types and one- or two-byte CRYPTO
    varints without a call; anything longer or cut short goes through ``_pull_varint`` (which
    raises as before), ACK and CONNECTION_CLOSE through ``Buffer``. tests/unit/dpi/
    test_dpi_caches.py checks it against a walk with a ``Buffer`` cursor for every frame.
    """
    crypto: list[tuple[int, bytes]] = []
    append = crypto.append
    search = _NOT_ZERO.search
    end = len(plain)
    pos = 0
    while pos < end:
        frame_type = plain[pos]
        if frame_type < 0x40:
            pos += 1
        else:
            frame_type, pos = _pull_varint(plain, pos)
        if frame_type == _PADDING:
            # https://www.rfc-editor.org/rfc/rfc9000#section-19.1: runs of zero bytes, skipped in C.
            nonzero = search(plain, pos)
            pos = end if nonzero is None else nonzero.start()
        elif frame_type == _PING:  # https://www.rfc-editor.org/rfc/rfc9000#section-19.2
            pass
        elif frame_type == _CRYPTO:  # https://www.rfc-editor.org/rfc/rfc9000#section-19.6
            if pos + 4 <= end and plain[pos] < 0x80:
                # the common shapes: one- or two-byte offset and length (4 bytes are there)
                byte = plain[pos]
                if byte < 0x40:
                    offset = byte
                    pos += 1
                else:
                    offset = ((byte & 0x3F) << 8) | plain[pos + 1]
                    pos += 2
                byte = plain[pos]
                if byte < 0x40:
                    length = byte
                    pos += 1
                elif byte < 0x80:
                    length = ((byte & 0x3F) << 8) | plain[pos + 1]
                    pos += 2
                else:
                    length, pos = _pull_varint(plain, pos)
            else:
                offset, pos = _pull_varint(plain, pos)
                length, pos = _pull_varint(plain, pos)
            if pos + length > end:
                raise NeedData(f"need {length} bytes at offset {pos}, have {end - pos}")
            append((offset, plain[pos : pos + length]))
            pos += length
        elif frame_type in (_ACK, _ACK_ECN):
            buf = Buffer(plain, pos)
            pull_ack_frame(buf, ecn=frame_type == _ACK_ECN)
            pos = buf.pos
        elif frame_type == _CONNECTION_CLOSE:
            buf = Buffer(plain, pos)
            pull_connection_close_frame(buf)
            pos = buf.pos
        else:
            # https://www.rfc-editor.org/rfc/rfc9000#section-12.4: any other type is a protocol
            # violation in an Initial; its extent is unknown, so stop but keep what came before.
            return InitialFrames(tuple(crypto), frame_type)
    return InitialFrames(tuple(crypto), None)


# --- per-flow assembly ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuicInitialProgress:
    """Where the assembly of one flow's ClientHello stands after a datagram."""

    version: int | None
    dcid: bytes | None
    """The DCID of the client's first Initial (the one the keys derive from)."""
    client_hello: ClientHello | None
    crypto_bytes: int
    """Contiguous CRYPTO bytes from offset 0 so far."""
    outcome: str
    """"complete" | "need-more" | "not-initial" | "decrypt-failed" | "malformed"."""
    error: str = ""
    """For "malformed"/"decrypt-failed"/"not-initial": what was wrong, for logs and tests."""

    @property
    def ja4(self) -> str | None:
        """JA4 with transport "q", computed on first read (cached on the ClientHello)."""
        return None if self.client_hello is None else "q" + self.client_hello.ja4_tail


def _looks_like_initial(payload: bytes) -> bool:
    """Long header with a version we decrypt: a broken one is malformed, not some other protocol."""
    return (
        len(payload) >= 5
        and payload[0] & 0xC0 == 0xC0
        and initial_salt(int.from_bytes(payload[1:5], "big")) is not None
    )


MAX_CRYPTO_BYTES = 65536
"""CRYPTO bytes accepted per flow. Real ClientHellos stay under ~8 KB even with post-quantum key
shares; a larger offset is malformed, so no flow can make the censor buffer without end."""

_MAX_KEY_SETS = 4


class QuicInitialAssembler:
    """Per-flow state for client Initial packets: decrypts each (RFC 9001 §5.2 initial secrets for
    v1, RFC 9369 for v2, draft salts), collects CRYPTO frames by offset (out of order, across
    packets and coalesced packets), and exposes the ClientHello once contiguous from offset 0.

    Feed it the UDP payloads the client sends, in order. Keys come from the DCID of the client's
    first Initial; later Initials may carry another DCID (the server's chosen one) yet keep those
    keys (RFC 9001 §5.2), so both are tried.
    """

    def __init__(self, keys_from: QuicInitialAssembler | None = None) -> None:
        # ``keys_from``: another assembler of the same flow whose derived keys may be reused (the
        # derivation is a pure function of version and DCID); nothing else is carried over.
        self._openers: dict[tuple[int, bytes], Opener] = (
            {} if keys_from is None else keys_from._openers
        )
        self._version: int | None = None
        self._first_dcid: bytes | None = None
        self._largest_pn = -1
        self._chunks: dict[int, bytes] = {}
        self._contiguous = 0
        self._done: QuicInitialProgress | None = None

    def feed(
        self, payload: bytes, first_header: QuicLongHeader | None = None
    ) -> QuicInitialProgress:
        """Take one client datagram; never raises for bad input, the outcome says what happened.
        ``first_header``: the datagram's first long header when the caller has parsed it already
        (``parse_long_header(payload)``), so it is not parsed twice."""
        if self._done is not None:
            return self._done
        decrypted = 0
        failure = ""
        failure_kind = "not-initial"
        offset = 0
        while offset < len(payload):
            try:
                if offset == 0 and first_header is not None:
                    header = first_header
                else:
                    header = parse_long_header(payload, offset)
            except DecodeError as exc:
                if offset == 0:
                    failure_kind = "malformed" if _looks_like_initial(payload) else "not-initial"
                    failure = str(exc)
                elif payload[offset] == 0 or not payload[offset] & 0x80:
                    break  # trailing zero padding or a short-header packet: nothing more to read
                else:
                    failure_kind, failure = "malformed", f"coalesced packet: {exc}"
                break
            if header.packet_type != PacketType.INITIAL or not header.supported:
                if offset == 0:
                    failure = f"version {header.version:#010x} type {header.packet_type}"
                offset = header.end  # 0-RTT/Handshake have a Length; the others fill the datagram
                continue
            try:
                plain = self._open(payload, header)
            except InvalidTag:
                failure_kind, failure = "decrypt-failed", "AEAD tag does not verify"
                offset = header.end
                continue
            try:
                frames = parse_initial_frames(plain)
            except DecodeError as exc:
                failure_kind, failure = "malformed", f"frames: {exc}"
                break
            decrypted += 1
            for frame_offset, data in frames.crypto:
                if frame_offset + len(data) > MAX_CRYPTO_BYTES:
                    return self._progress("malformed", "CRYPTO data beyond the per-flow limit")
                if len(data) > len(self._chunks.get(frame_offset, b"")):
                    self._chunks[frame_offset] = data
            offset = header.end
        if decrypted:
            return self._advance()
        return self._progress(failure_kind, failure)

    def _open(self, payload: bytes, header: QuicLongHeader) -> bytes:
        candidates = [header.dcid]
        if self._first_dcid is not None and self._first_dcid != header.dcid:
            candidates.append(self._first_dcid)
        for dcid in candidates:
            opener = self._opener(header.version, dcid)
            try:
                packet_number, plain = opener.open(payload, header, self._largest_pn)
            except InvalidTag:
                continue
            if self._first_dcid is None:  # the first Initial that decrypts fixes the flow's keys
                self._version, self._first_dcid = header.version, dcid
            self._largest_pn = max(self._largest_pn, packet_number)
            return plain
        raise InvalidTag()

    def _opener(self, version: int, dcid: bytes) -> Opener:
        opener = self._openers.get((version, dcid))
        if opener is None:
            if len(self._openers) >= _MAX_KEY_SETS:
                self._openers.pop(next(iter(self._openers)))
            opener = Opener(InitialKeys.derive(dcid, version))
            self._openers[(version, dcid)] = opener
        return opener

    def _advance(self) -> QuicInitialProgress:
        end = 0
        for offset in sorted(self._chunks):
            if offset > end:
                break
            end = max(end, offset + len(self._chunks[offset]))
        self._contiguous = end
        if end < 4:
            return self._progress("need-more")
        head = self._assemble(4)
        if head[0] != 0x01:
            return self._progress("malformed", f"CRYPTO data starts with handshake type {head[0]}")
        needed = 4 + int.from_bytes(head[1:4], "big")
        if needed > MAX_CRYPTO_BYTES:
            return self._progress("malformed", f"ClientHello length {needed} beyond the limit")
        if end < needed:
            return self._progress("need-more")
        try:
            client_hello = parse_client_hello_message(self._assemble(needed))
        except DecodeError as exc:
            return self._progress("malformed", f"ClientHello: {exc}")
        self._done = QuicInitialProgress(
            self._version, self._first_dcid, client_hello, end, "complete"
        )
        return self._done

    def _assemble(self, length: int) -> bytes:
        out = bytearray(length)
        for offset in sorted(self._chunks):
            if offset >= length:
                break
            data = self._chunks[offset][: length - offset]
            out[offset : offset + len(data)] = data
        return bytes(out)

    def _progress(self, outcome: str, error: str = "") -> QuicInitialProgress:
        return QuicInitialProgress(
            self._version, self._first_dcid, None, self._contiguous, outcome, error
        )
