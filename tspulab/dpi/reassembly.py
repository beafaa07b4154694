"""How much of a TCP byte stream and TLS record layer the DPI box puts together before it looks.

A behaviour switch with three modes, each a dated censor model:

``none``
    Every TCP segment is inspected on its own. A ClientHello is seen only if the segment's
    *first* TLS record is a handshake record that lies wholly inside the segment and holds the
    whole ClientHello message. This is the 2021 Twitter throttler and the 2022 TSPU (CP-THR §3:
    "the TLS record length must be less than the TCP payload length", read here as "the whole
    record is in the segment"; a ChangeCipherSpec record in front of the ClientHello defeats it;
    tspu-behaviour.md §2.5: no TCP, IP-fragment or TLS-record reassembly).
``tcp``
    The client's segments are put together by sequence number into one byte stream, from the
    first data byte; the stream's first TLS record must be a handshake record holding the whole
    ClientHello. So a ClientHello split across segments (GoodbyeDPI/zapret split at the SNI,
    padding past one MSS) is seen; one fragmented over several TLS records, or behind a CCS
    record, is not.
``tls-records``
    ``tcp`` plus the record layer: records before the ClientHello that are not handshake records
    (ChangeCipherSpec, alerts; at most ``MAX_RECORDS_BEFORE_HELLO``) are skipped, and a handshake
    message fragmented over several handshake records is joined (RFC 8446 §5.1 allows it).

Stream rules (``TcpStream``), stated because a censor and an endpoint may differ on them:
- The stream starts at ISN+1 when the SYN was seen, else at the first data segment's sequence
  number. Sequence numbers wrap modulo 2**32.
- Retransmissions and overlaps follow an ``OverlapPolicy`` (below); both stream modes default to
  ``longest``. An endpoint's stack keeps the bytes it accepted first (Linux and the BSDs trim a
  retransmission to what is new), but a box that only *reads* is fed segments the endpoint never
  accepted: zapret/GoodbyeDPI-style fakes with a bad checksum or a TTL that expires before the
  server, and 1-byte junk on an ACK. With "first seen wins" such a segment sent first would
  overwrite the start of the real ClientHello or request in the box's copy. The TSPU's own policy
  is not published; what is known is that a fake ClientHello followed by the real one is still
  caught within its 15-20-packet window (tspu-behaviour.md §5.10 and statement 8, CP-THR), i.e.
  the box keeps reading after a fake, which ``longest`` and ``last`` model and ``first`` does not.
- A TLS record or HTTP request may also start later in the stream than its first byte: after a
  plaintext preamble (SMTP/IMAP/POP3/FTP STARTTLS, a proxy's CONNECT exchange) or behind junk
  from a mid-connection pickup. The stream keeps the offsets at which segments began
  (``segment_starts``, the first 32) so the classifier can look for a ClientHello there.
- Out-of-order segments are buffered, up to ``max_pending`` segments and ``max_bytes`` in all,
  and drained once the gap before them is filled. Segments beyond the bound are dropped (and the
  stream notes it), so an attacker cannot make the box buffer without limit.
- The stream stops growing at ``max_bytes`` (a ClientHello is at most one handshake message;
  64 KiB covers the largest post-quantum and padded ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tspulab.dpi.errors import Malformed, NeedData
from tspulab.dpi.tls import (
    RECORD_HEADER_LEN,
    ClientHello,
    ContentType,
    HandshakeType,
    parse_client_hello_message,
    parse_record_header,
)

MAX_RECORDS_BEFORE_HELLO = 8
_MAX_EXTENTS = 32
MAX_HANDSHAKE_RECORDS = 64


class ReassemblyMode(StrEnum):
    NONE = "none"
    TCP = "tcp"
    TLS_RECORDS = "tls-records"


class OverlapPolicy(StrEnum):
    """Whose bytes a box keeps where two segments cover the same sequence numbers (the policies of
    Snort's stream5 and Suricata's stream engine, which model end hosts the same way)."""

    FIRST = "first"
    """Bytes already held are never replaced (what Linux/BSD endpoints do with accepted data)."""
    LAST = "last"
    """A later segment's bytes replace held ones (Snort/Suricata "last")."""
    LONGEST = "longest"
    """A later segment replaces held bytes only if it is longer than every segment that put them
    there: a 1-byte fake or junk segment loses to the full-size real one, an equal-size
    retransmission changes nothing."""


class NotClientHello(Malformed):
    """Valid TLS, but the ClientHello is not where this mode looks (a CCS record first, a server
    handshake message, or a ClientHello fragmented over records in a mode that does not join)."""


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


class TcpStream:
    """One direction of a TCP connection as a contiguous byte stream (see module docstring)."""

    __slots__ = (
        "_base", "_extents", "_pending", "data", "dropped_segments", "max_bytes", "max_pending",
        "overlap", "rewritten",
    )  # fmt: skip

    def __init__(
        self,
        max_bytes: int = 65536,
        max_pending: int = 32,
        overlap: OverlapPolicy = OverlapPolicy.LONGEST,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.overlap = overlap
        self.data = bytearray()
        """Contiguous bytes from the start of the stream."""
        self._base: int | None = None
        self._pending: list[tuple[int, bytes]] = []  # (offset, bytes), disjoint, unordered
        self._extents: list[tuple[int, int]] = []  # (offset, length) of segments in ``data``
        self.dropped_segments = 0
        self.rewritten = False
        """Set when held bytes were replaced under the overlap policy; the reader clears it."""

    @property
    def segment_starts(self) -> list[int]:
        """Stream offsets at which the first segments' bytes began, ascending."""
        return sorted({start for start, _ in self._extents if start >= 0})

    def syn(self, seq: int) -> None:
        """A SYN fixes the start: the first data byte is ISN+1."""
        if self._base is None:
            self._base = (seq + 1) & 0xFFFFFFFF

    def feed(self, seq: int, payload: bytes) -> bool:
        """Add one segment; True if the contiguous stream grew."""
        if not payload:
            return False
        if self._base is None:
            self._base = seq
        offset = _signed32(seq - self._base)
        end = offset + len(payload)
        have = len(self.data)
        changed = offset < have and end > 0 and self._overlap(offset, payload, have)
        if end <= have:
            return changed  # a retransmission of bytes already in the stream
        if offset > have:
            self._buffer(offset, payload)
            return changed
        if have >= self.max_bytes:
            return changed
        # In order or overlapping the end: the overlap was settled above, take what is new.
        self.data += payload[have - offset : have - offset + self.max_bytes - have]
        self._record(offset, len(payload))
        self._drain()
        return True

    def _record(self, offset: int, length: int) -> None:
        if len(self._extents) < _MAX_EXTENTS:
            self._extents.append((offset, length))

    def _overlap(self, offset: int, payload: bytes, have: int) -> bool:
        """Apply the overlap policy to the held bytes ``payload`` covers; True if they changed."""
        if self.overlap is OverlapPolicy.FIRST:
            return False
        start, stop = max(offset, 0), min(offset + len(payload), have)
        if self.overlap is OverlapPolicy.LONGEST:
            if len(self._extents) >= _MAX_EXTENTS:
                return False  # no longer know who wrote what: keep the bytes
            size = len(payload)
            if any(s < stop and s + n > start and n >= size for s, n in self._extents):
                return False
        new = payload[start - offset : stop - offset]
        if self.data[start:stop] == new:
            return False
        self.data[start:stop] = new
        self._record(offset, len(payload))
        self.rewritten = True
        return True

    def _buffer(self, offset: int, payload: bytes) -> None:
        """Keep the parts of an out-of-order segment not already buffered; under ``last`` and
        ``longest`` buffered pieces it wholly covers (and, for ``longest``, outsizes) go first."""
        end = offset + len(payload)
        if self.overlap is not OverlapPolicy.FIRST:
            last = self.overlap is OverlapPolicy.LAST
            self._pending = [
                (p_off, p_data)
                for p_off, p_data in self._pending
                if not (
                    offset <= p_off
                    and p_off + len(p_data) <= end
                    and (last or len(p_data) < len(payload))
                )
            ]
        pieces = [(offset, end)]
        for p_off, p_data in self._pending:
            p_end = p_off + len(p_data)
            cut: list[tuple[int, int]] = []
            for s, e in pieces:
                if e <= p_off or s >= p_end:
                    cut.append((s, e))
                    continue
                if s < p_off:
                    cut.append((s, p_off))
                if e > p_end:
                    cut.append((p_end, e))
            pieces = cut
        pending_bytes = sum(len(d) for _, d in self._pending)
        for s, e in pieces:
            if (
                len(self._pending) >= self.max_pending
                or e > self.max_bytes
                or (pending_bytes + e - s > self.max_bytes)
            ):
                self.dropped_segments += 1
                return
            self._pending.append((s, payload[s - offset : e - offset]))
            pending_bytes += e - s

    def _drain(self) -> None:
        """Move buffered segments that the stream has reached into it."""
        progressed = True
        while progressed and self._pending:
            progressed = False
            have = len(self.data)
            for item in self._pending:
                p_off, p_data = item
                if p_off <= have:
                    self._pending.remove(item)
                    if p_off + len(p_data) > have:
                        self.data += p_data[have - p_off : have - p_off + self.max_bytes - have]
                        self._record(p_off, len(p_data))
                    progressed = True
                    break


@dataclass(frozen=True, slots=True)
class TlsScan:
    """Where a ClientHello was found in a byte buffer."""

    client_hello: ClientHello
    records: int
    """TLS records read to reach it (1 unless records were skipped or joined)."""


def looks_like_tls_record(data: bytes) -> bool:
    """A cheap first-bytes test: a TLS record header could start here (type, version 3.x)."""
    return len(data) >= 3 and 20 <= data[0] <= 24 and data[1] == 3 and data[2] <= 4


def find_client_hello(data: bytes, mode: ReassemblyMode) -> TlsScan:
    """The ClientHello at the start of ``data`` as ``mode`` reads it.

    ``data`` is one segment (``none``) or the stream so far (``tcp``, ``tls-records``). Raises
    NeedData (more stream could complete it; in ``none`` mode the caller treats that as "not
    seen"), NotClientHello, or Malformed.
    """
    if mode is not ReassemblyMode.TLS_RECORDS:
        header = parse_record_header(data, 0)
        if header.content_type != ContentType.HANDSHAKE:
            raise NotClientHello(f"first TLS record is type {header.content_type}, not handshake")
        if len(data) < RECORD_HEADER_LEN + header.length:
            raise NeedData(f"TLS record of {header.length} bytes, have {len(data) - 5}")
        body = data[RECORD_HEADER_LEN : RECORD_HEADER_LEN + header.length]
        _check_client_hello_type(body)
        if len(body) >= 4 and (int.from_bytes(body[1:4], "big") + 4) > len(body):
            raise NotClientHello("ClientHello continues in a further TLS record")
        return TlsScan(parse_client_hello_message(body), 1)
    return _scan_records(data)


def _check_client_hello_type(body: bytes) -> None:
    if body and body[0] != HandshakeType.CLIENT_HELLO:
        raise NotClientHello(f"handshake message type {body[0]} is not ClientHello")


def _scan_records(data: bytes) -> TlsScan:
    """Skip non-handshake records, join handshake fragments, parse the ClientHello."""
    pos = 0
    skipped = 0
    records = 0
    message = bytearray()
    while True:
        header = parse_record_header(data, pos)
        records += 1
        if header.content_type != ContentType.HANDSHAKE:
            if message:
                raise Malformed("a non-handshake record interrupts a fragmented ClientHello")
            skipped += 1
            if skipped > MAX_RECORDS_BEFORE_HELLO:
                raise NotClientHello(f"more than {MAX_RECORDS_BEFORE_HELLO} records before hello")
            if len(data) < pos + RECORD_HEADER_LEN + header.length:
                raise NeedData("a record before the ClientHello is incomplete")
            pos += RECORD_HEADER_LEN + header.length
            continue
        start = pos + RECORD_HEADER_LEN
        chunk = data[start : start + header.length]
        message += chunk
        _check_client_hello_type(bytes(message[:1]))
        if len(message) >= 4:
            needed = int.from_bytes(message[1:4], "big") + 4
            if len(message) >= needed:
                return TlsScan(parse_client_hello_message(bytes(message)), records)
        if len(chunk) < header.length:
            raise NeedData(f"TLS record of {header.length} bytes, have {len(chunk)}")
        if records >= MAX_HANDSHAKE_RECORDS:
            raise Malformed(
                f"ClientHello fragmented over more than {MAX_HANDSHAKE_RECORDS} records"
            )
        pos = start + header.length


_STARTTLS = (
    (b"STARTTLS", "starttls"),  # SMTP (RFC 3207), IMAP (RFC 9051), XMPP, LDAP, NNTP
    (b"STLS", "starttls (pop3)"),  # POP3 (RFC 2595)
    (b"AUTH TLS", "starttls (ftp)"),  # FTP (RFC 4217)
    (b"AUTH SSL", "starttls (ftp)"),
    (b"CONNECT ", "an http connect"),
)


def preamble_kind(preamble: bytes) -> str:
    """What came before a ClientHello or request in the stream, for the verdict's detail."""
    if preamble[:1] == b"\x05" and b"\x05\x01\x00" in preamble[2:]:
        return "a socks5 connect"  # RFC 1928: greeting, then VER 5 CMD 1 RSV 0
    if preamble[:2] == b"\x04\x01" and preamble.endswith(b"\x00"):
        return "a socks4 connect"
    upper = preamble[-512:].upper()
    for marker, kind in _STARTTLS:
        if marker in upper:
            return kind
    return f"a {len(preamble)}-byte plaintext preamble"


def client_hello_record(data: bytes) -> bool:
    """A TLS handshake record header (SSL3/TLS1.x) followed by the ClientHello message type."""
    return len(data) >= 6 and data[0] == 22 and data[1] == 3 and data[2] <= 4 and data[5] == 1
