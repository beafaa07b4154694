"""IP fragments as the 2022 TSPU forwarded them: buffered, not reassembled, TTL copied, at most 45.

What is modelled (tspu-behaviour.md §2.4, CP-TSPU Fig. 8 [M], §9.12):

- the box **buffers** the fragments of a datagram until it holds all of them, then forwards them
  as they came (each fragment its own packet, in arrival order): it does **not** reassemble them,
  so a ClientHello split across IP fragments is never read whole (the classifier sees the first
  fragment's bytes only, packet.py);
- when forwarding, it **copies the TTL** (IPv6: hop limit) of the offset-0 fragment into the
  later fragments (the remote fingerprint of §2.4, and how the box's hop can be located);
- its cache holds **at most 45 fragments** per datagram: a datagram with more is dropped, the
  fragments held and the ones still to come.

Not given by the source, and chosen here (each a parameter): how long an incomplete datagram is
kept before it is dropped (``timeout_s``, 30 s, Linux's ``ipfrag_time`` default), how many
datagrams the cache holds at once (``max_datagrams``; the oldest incomplete one is dropped), and
what happens to overlapping fragments (kept and forwarded as they came; the datagram is complete
when its bytes from 0 to the end are covered).

The cache works on frames (Ethernet with 802.1Q/802.1ad tags, or raw IP): it rewrites the TTL
and the IPv4 header checksum in place in a copy, nothing else. Frames of other link types, and
fragments inside tunnels, pass through (``Held.PASS``). Time is an argument.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from tspulab.dpi.packet import LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW

MAX_FRAGMENTS = 45
"""The 2022 TSPU's fragment cache bound per datagram (§2.4, CP-TSPU)."""
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_DATAGRAMS = 4096

_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
_IPV6_FRAGMENT = 44
_IPV6_SKIPPED = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options before it


class Held(StrEnum):
    """What the cache did with one fragment."""

    HELD = "held"
    """Buffered; nothing leaves yet."""
    RELEASED = "released"
    """This fragment completed its datagram: all its fragments leave now (``frames``)."""
    DROPPED = "dropped"
    """The datagram passed the 45-fragment bound (or was already dropped for it)."""
    PASS = "pass"
    """Not a fragment the cache can handle (not IP, a tunnel, another link type): forward as is."""


@dataclass(frozen=True, slots=True)
class FragmentResult:
    held: Held
    frames: tuple[bytes, ...] = ()
    """RELEASED: the datagram's fragments in arrival order, later ones with the first's TTL."""


@dataclass(frozen=True, slots=True)
class IpFragment:
    """The fields of one fragment's IP header the cache needs, and where the TTL sits."""

    key: tuple[bytes, bytes, int, int]
    """(source, destination, protocol or next header, identification)."""
    offset: int
    """Fragment offset in bytes."""
    length: int
    """Fragment data bytes."""
    more: bool
    ttl: int
    ttl_at: int
    """Byte index of the TTL/hop limit in the frame."""
    checksum_at: int | None
    """Byte index of the IPv4 header checksum (None for IPv6); the header is
    [checksum_at - 10, checksum_at - 10 + header length)."""
    header_len: int


@dataclass(slots=True)
class _Datagram:
    first_seen: float
    frames: list[bytes] = field(default_factory=list)
    parts: list[IpFragment] = field(default_factory=list)
    dropped: bool = False


class FragmentCache:
    """Buffers fragments per datagram and releases them, unreassembled, once all have come."""

    def __init__(
        self,
        max_fragments: int = MAX_FRAGMENTS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
    ) -> None:
        if max_fragments < 1 or timeout_s <= 0 or max_datagrams < 1:
            raise ValueError("max_fragments, timeout_s and max_datagrams must be positive")
        self.max_fragments = max_fragments
        self.timeout_s = timeout_s
        self.max_datagrams = max_datagrams
        self._datagrams: OrderedDict[tuple[bytes, bytes, int, int], _Datagram] = OrderedDict()
        self.counters = {"held": 0, "released": 0, "dropped_over_limit": 0, "expired": 0}

    def __len__(self) -> int:
        return len(self._datagrams)

    def add(self, frame: bytes, now: float, linktype: int = LINKTYPE_ETHERNET) -> FragmentResult:
        """Take one frame carrying an IP fragment (see ``Held`` for the outcomes)."""
        self.expire(now)
        frag = parse_fragment(frame, linktype)
        if frag is None:
            return FragmentResult(Held.PASS)
        datagram = self._datagrams.get(frag.key)
        if datagram is None:
            if len(self._datagrams) >= self.max_datagrams:
                self._datagrams.popitem(last=False)  # the oldest incomplete datagram goes
                self.counters["expired"] += 1
            datagram = self._datagrams[frag.key] = _Datagram(now)
        if datagram.dropped:
            return FragmentResult(Held.DROPPED)
        if len(datagram.parts) >= self.max_fragments:
            # the 46th fragment: the datagram is dropped, what is held and what is still to come
            datagram.dropped = True
            datagram.frames.clear()
            self.counters["dropped_over_limit"] += 1
            return FragmentResult(Held.DROPPED)
        datagram.frames.append(frame)
        datagram.parts.append(frag)
        if not _complete(datagram.parts):
            self.counters["held"] += 1
            return FragmentResult(Held.HELD)
        del self._datagrams[frag.key]
        self.counters["released"] += 1
        return FragmentResult(Held.RELEASED, _with_first_ttl(datagram))

    def expire(self, now: float) -> int:
        """Drop datagrams older than the timeout (incomplete, or kept to drop their rest)."""
        gone = 0
        while self._datagrams:
            key, datagram = next(iter(self._datagrams.items()))
            if now - datagram.first_seen < self.timeout_s:
                break
            del self._datagrams[key]
            gone += 1
        self.counters["expired"] += gone
        return gone


def _complete(parts: list[IpFragment]) -> bool:
    """The fragments cover their datagram from byte 0 to the end the last fragment gives."""
    ends = [p.offset + p.length for p in parts if not p.more]
    if not ends:
        return False
    end = max(ends)
    covered = 0
    for p in sorted(parts, key=lambda p: p.offset):
        if p.offset > covered:
            return False
        covered = max(covered, p.offset + p.length)
    return covered >= end


def _with_first_ttl(datagram: _Datagram) -> tuple[bytes, ...]:
    first = next(p for p in datagram.parts if p.offset == 0)
    out = []
    for frame, part in zip(datagram.frames, datagram.parts, strict=True):
        out.append(frame if part.ttl == first.ttl else set_ttl(frame, part, first.ttl))
    return tuple(out)


def set_ttl(frame: bytes, part: IpFragment, ttl: int) -> bytes:
    """``frame`` with its TTL (hop limit) set to ``ttl`` and the IPv4 header checksum redone."""
    data = bytearray(frame)
    data[part.ttl_at] = ttl
    if part.checksum_at is not None:
        start = part.checksum_at - 10
        data[part.checksum_at : part.checksum_at + 2] = b"\x00\x00"
        checksum = ipv4_checksum(bytes(data[start : start + part.header_len]))
        data[part.checksum_at : part.checksum_at + 2] = checksum.to_bytes(2, "big")
    return bytes(data)


def ipv4_checksum(header: bytes) -> int:
    """RFC 791 header checksum (the checksum field zeroed by the caller)."""
    if len(header) % 2:
        header += b"\x00"
    total = sum(int.from_bytes(header[i : i + 2]) for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_fragment(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> IpFragment | None:
    """The fragment fields of ``frame``'s outer IP header, or None when it is not an IP fragment
    this cache handles (never raises)."""
    try:
        offset = _ip_offset(frame, linktype)
        if offset is None or len(frame) < offset + 20:
            return None
        version = frame[offset] >> 4
        if version == 4:
            return _ipv4(frame, offset)
        if version == 6:
            return _ipv6(frame, offset)
    except (IndexError, struct.error):
        return None
    return None


def _ip_offset(frame: bytes, linktype: int) -> int | None:
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return 0
    if linktype != LINKTYPE_ETHERNET:
        return None
    offset = 12
    ethertype = int.from_bytes(frame[offset : offset + 2])
    while ethertype in _VLAN_TAGS:
        offset += 4
        ethertype = int.from_bytes(frame[offset : offset + 2])
    return offset + 2 if ethertype in (0x0800, 0x86DD) else None


def _ipv4(frame: bytes, o: int) -> IpFragment | None:
    ihl = (frame[o] & 0x0F) * 4
    total, ident, flags_offset, ttl, proto = struct.unpack_from("!2xHHHBB", frame, o)
    more = bool(flags_offset & 0x2000)
    frag_offset = (flags_offset & 0x1FFF) * 8
    if not more and frag_offset == 0:
        return None  # not a fragment
    if ihl < 20 or total < ihl or len(frame) < o + total:
        return None
    key = (frame[o + 12 : o + 16], frame[o + 16 : o + 20], proto, ident)
    return IpFragment(key, frag_offset, total - ihl, more, ttl, o + 8, o + 10, ihl)


def _ipv6(frame: bytes, o: int) -> IpFragment | None:
    if len(frame) < o + 40:
        return None
    payload_len = int.from_bytes(frame[o + 4 : o + 6])
    nxt, hop_limit = frame[o + 6], frame[o + 7]
    at = o + 40
    for _ in range(8):
        if nxt == _IPV6_FRAGMENT:
            break
        if nxt not in _IPV6_SKIPPED:
            return None
        nxt, at = frame[at], at + (frame[at + 1] + 1) * 8
    else:
        return None
    if len(frame) < at + 8:
        return None
    inner, offset_flags, ident = frame[at], *struct.unpack_from("!HI", frame, at + 2)
    data = o + 40 + payload_len - (at + 8)
    if data < 0:
        return None
    key = (frame[o + 8 : o + 24], frame[o + 24 : o + 40], inner, ident)
    return IpFragment(key, offset_flags & 0xFFF8, data, bool(offset_flags & 1), hop_limit,
                      o + 7, None, 40)  # fmt: skip
