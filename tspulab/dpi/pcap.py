"""Reading capture files: pcap and pcapng, each through a small reader of its own.

Yields ``(timestamp, linktype, frame)`` so the decoder picks the link header per frame. Pure I/O;
no decoding happens here.

pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html): micro- and nanosecond
magics in either byte order, and the "modified" pcap of Kuznetsov's patches (8 more bytes a record);
the link type is the low 16 bits of the header's field (the top bits may carry FCS length). Read
here rather than through dpkt's ``pcap.Reader``, whose per-record objects made reading the file
cost more than classifying it (``tspulab replay`` of 200 k packets: ~60 % of the time in dpkt).

pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html) is read here rather than
through ``dpkt.pcapng.Reader`` because that reader applies the *first* interface's link type and
timestamp resolution to every packet. A file merged from several interfaces (``mergecap``, a
capture on ``any`` written by dumpcap, one interface in microseconds and another in nanoseconds)
then gets timestamps 1000x too large on some packets, which splits their flows, and frames decoded
with the wrong link header. Here every Enhanced/Simple/obsolete Packet Block is read with its own
interface's link type, ``if_tsresol`` (option 9: 10^-n, or 2^-n with the top bit set) and
``if_tsoffset`` (option 14), per section (a new Section Header Block starts a new interface list
and may switch byte order).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tspulab.dpi.errors import Malformed

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_OPB = 0x00000002  # obsolete Packet Block
_SPB = 0x00000003
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_TSRESOL = 9
_OPT_TSOFFSET = 14
_MAX_BLOCK = 64 << 20  # a block larger than this is corruption, not a packet


class CaptureError(Malformed):
    """The capture file itself cannot be read (bad magic, truncated record or block)."""


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    divisor: float = 1e6
    offset: float = 0.0


def read_capture(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """Frames of a pcap or pcapng file in file order."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
        if magic == _SHB.to_bytes(4, "little"):  # the SHB type is a palindrome in both orders
            fh.seek(0)
            yield from _read_pcapng(fh, str(path))
            return
        pcap = _PCAP_MAGICS.get(magic)
        if pcap is None:
            raise CaptureError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'none'})")
        yield from _read_pcap(fh, str(path), *pcap)


# magic as read -> (byte order, fractional-second divisor, extra bytes per record header)
_PCAP_MAGICS = {
    bytes.fromhex("d4c3b2a1"): ("<", 1e6, 0),
    bytes.fromhex("a1b2c3d4"): (">", 1e6, 0),
    bytes.fromhex("4d3cb2a1"): ("<", 1e9, 0),
    bytes.fromhex("a1b23c4d"): (">", 1e9, 0),
    bytes.fromhex("34cdb2a1"): ("<", 1e6, 8),  # modified pcap (Kuznetsov)
    bytes.fromhex("a1b2cd34"): (">", 1e6, 8),
}


def _read_pcap(
    fh: BinaryIO, name: str, order: str, divisor: float, extra: int
) -> Iterator[tuple[float, int, bytes]]:
    header = fh.read(20)
    if len(header) < 20:
        raise CaptureError(f"{name}: pcap file header cut short ({len(header) + 4} of 24 bytes)")
    linktype = struct.unpack(order + "16xI", header)[0] & 0xFFFF
    record = struct.Struct(order + "IIII").unpack
    read = fh.read
    size = 16 + extra
    number = 0
    while True:
        head = read(size)
        if len(head) < size:
            if head:
                raise CaptureError(f"{name}: record {number + 1}: header cut short")
            return
        number += 1
        seconds, fraction, caplen, _ = record(head[:16])
        if caplen > _MAX_BLOCK:
            raise CaptureError(f"{name}: record {number}: captured length {caplen} is invalid")
        frame = read(caplen)
        if len(frame) < caplen:
            raise CaptureError(f"{name}: record {number}: {len(frame)} of {caplen} bytes")
        yield seconds + fraction / divisor, linktype, frame


def _read_pcapng(fh: BinaryIO, name: str) -> Iterator[tuple[float, int, bytes]]:
    order = "<"
    interfaces: list[_Interface] = []
    last_ts = 0.0
    number = 0
    while True:
        head = fh.read(8)
        if not head:
            return
        number += 1
        where = f"{name}: block {number}"
        if len(head) < 8:
            raise CaptureError(f"{where}: truncated block header")
        btype = struct.unpack(order + "I", head[:4])[0]
        if btype == _SHB:
            bom = fh.read(4)
            if len(bom) < 4:
                raise CaptureError(f"{where}: truncated section header")
            order = "<" if struct.unpack("<I", bom)[0] == _BYTE_ORDER_MAGIC else ">"
            if struct.unpack(order + "I", bom)[0] != _BYTE_ORDER_MAGIC:
                raise CaptureError(f"{where}: byte-order magic {bom.hex()} is not 1a2b3c4d")
            length = struct.unpack(order + "I", head[4:])[0]
            _read_body(fh, length, 4, where)
            interfaces = []  # each section has its own interfaces
            continue
        length = struct.unpack(order + "I", head[4:])[0]
        body = _read_body(fh, length, 0, where)
        if btype == _IDB:
            interfaces.append(_parse_idb(body, order, where))
        elif btype in (_EPB, _OPB):
            if btype == _EPB:
                if len(body) < 20:
                    raise CaptureError(f"{where}: enhanced packet block body of {len(body)} bytes")
                iface, high, low, caplen = struct.unpack_from(order + "IIII", body)
                start = 20
            else:
                if len(body) < 20:
                    raise CaptureError(f"{where}: packet block body of {len(body)} bytes")
                iface, _, high, low, caplen = struct.unpack_from(order + "HHIII", body)
                start = 20
            if iface >= len(interfaces):
                raise CaptureError(f"{where}: interface id {iface} has no interface block")
            if start + caplen > len(body):
                raise CaptureError(f"{where}: captured length {caplen} runs past the block")
            info = interfaces[iface]
            last_ts = info.offset + ((high << 32) | low) / info.divisor
            yield last_ts, info.linktype, body[start : start + caplen]
        elif btype == _SPB:
            if not interfaces:
                raise CaptureError(f"{where}: simple packet block before any interface block")
            if len(body) < 4:
                raise CaptureError(f"{where}: simple packet block body of {len(body)} bytes")
            orig_len = struct.unpack_from(order + "I", body)[0]
            info = interfaces[0]
            caplen = min(orig_len, info.snaplen or orig_len, len(body) - 4)
            yield last_ts, info.linktype, body[4 : 4 + caplen]  # an SPB has no timestamp


def _read_body(fh: BinaryIO, length: int, already: int, where: str) -> bytes:
    """The rest of a block body (``already`` body bytes were read), trailing length consumed."""
    if length < 12 + already or length % 4 or length > _MAX_BLOCK:
        raise CaptureError(f"{where}: block total length {length} is invalid")
    need = length - 12 - already
    rest = fh.read(need)
    if len(rest) < need:
        raise CaptureError(f"{where}: truncated block ({len(rest)} of {need} bytes)")
    if len(fh.read(4)) < 4:
        raise CaptureError(f"{where}: truncated block (no trailing length)")
    return rest


def _parse_idb(body: bytes, order: str, where: str) -> _Interface:
    if len(body) < 8:
        raise CaptureError(f"{where}: interface description block body of {len(body)} bytes")
    linktype, _, snaplen = struct.unpack_from(order + "HHI", body)
    info = _Interface(linktype, snaplen)
    pos = 8
    while pos + 4 <= len(body):
        code, size = struct.unpack_from(order + "HH", body, pos)
        value = body[pos + 4 : pos + 4 + size]
        if code == 0:  # opt_endofopt
            break
        if code == _OPT_TSRESOL and size >= 1:
            exponent = value[0] & 0x7F
            if exponent > 63:
                raise CaptureError(f"{where}: if_tsresol exponent {exponent} out of range")
            info.divisor = float(2**exponent if value[0] & 0x80 else 10**exponent)
        elif code == _OPT_TSOFFSET and size >= 8:
            info.offset = float(struct.unpack(order + "q", value[:8])[0])
        pos += 4 + size + (-size % 4)
    return info
