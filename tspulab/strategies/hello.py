"""Byte-level edits of a client's first write when it is a TLS ClientHello in one record.

The client (curl, a browser) writes its ClientHello in one ``write()``: one TLS record holding one
handshake message (RFC 8446 §4.1.2). The stream strategies reframe it without changing a byte of
the message (its bytes enter the TLS 1.3 transcript hash, RFC 8446 §4.4.1): the record cut into
several records (RFC 8446 §5.1: a handshake message may be fragmented over records), another
record in front. Fakes need ClientHellos that are never meant to complete: the real one with
another host name (``with_host_name``, every length field kept consistent, RFC 6066 §3), or a
made-up one (``build_client_hello``), either padded (RFC 7685) to a size.

Offsets in ``HelloLayout`` are from the start of the buffer (the record header).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

RECORD_HEADER = 5
HANDSHAKE_HEADER = 4
EXT_SERVER_NAME = 0x0000
EXT_PADDING = 0x0015


class NotAClientHello(ValueError):
    """The buffer is not one TLS record holding a whole ClientHello."""


@dataclass(frozen=True, slots=True)
class HelloLayout:
    record_len: int
    ext_block: int
    """Offset of the 2-byte extensions length."""
    extensions: tuple[tuple[int, int, int], ...]
    """(type, offset of the extension header, body length) in wire order."""
    sni_ext: int | None
    """Offset of the server_name extension header."""
    name_off: int | None
    """Offset of the first host_name's bytes."""
    name_len: int


def layout(buf: bytes) -> HelloLayout:
    """Where things are in a one-record ClientHello; NotAClientHello otherwise."""
    if len(buf) < RECORD_HEADER + HANDSHAKE_HEADER or buf[0] != 22 or buf[1] != 3:
        raise NotAClientHello("not a TLS handshake record")
    record_len = struct.unpack_from("!H", buf, 3)[0]
    if len(buf) < RECORD_HEADER + record_len:
        raise NotAClientHello(f"record of {record_len} bytes, have {len(buf) - RECORD_HEADER}")
    if buf[5] != 1:
        raise NotAClientHello(f"handshake type {buf[5]} is not ClientHello")
    msg_len = int.from_bytes(buf[6:9], "big")
    if msg_len + HANDSHAKE_HEADER != record_len:
        raise NotAClientHello("the ClientHello does not fill exactly one record")
    end = RECORD_HEADER + record_len
    pos = RECORD_HEADER + HANDSHAKE_HEADER + 2 + 32  # legacy_version, random
    try:
        pos += 1 + buf[pos]  # session id
        pos += 2 + struct.unpack_from("!H", buf, pos)[0]  # cipher suites
        pos += 1 + buf[pos]  # compression methods
        ext_block = pos
        ext_total = struct.unpack_from("!H", buf, pos)[0]
    except (IndexError, struct.error):
        raise NotAClientHello("ClientHello cut short before its extensions") from None
    if ext_block + 2 + ext_total != end:
        raise NotAClientHello("extensions do not end where the record does")
    pos = ext_block + 2
    extensions: list[tuple[int, int, int]] = []
    sni_ext = name_off = None
    name_len = 0
    while pos < end:
        if pos + 4 > end:
            raise NotAClientHello("extension header cut short")
        etype, elen = struct.unpack_from("!HH", buf, pos)
        if pos + 4 + elen > end:
            raise NotAClientHello(f"extension {etype} runs past the record")
        extensions.append((etype, pos, elen))
        if etype == EXT_SERVER_NAME and sni_ext is None and elen >= 5:
            sni_ext = pos
            # server_name_list length (2), name_type (1), host_name length (2), host_name
            if buf[pos + 6] == 0:
                name_len = struct.unpack_from("!H", buf, pos + 7)[0]
                name_off = pos + 9
        pos += 4 + elen
    return HelloLayout(record_len, ext_block, tuple(extensions), sni_ext, name_off, name_len)


def _fix_lengths(buf: bytearray, lay: HelloLayout, delta: int) -> None:
    """Grow the record, handshake and extensions lengths by ``delta`` bytes."""
    struct.pack_into("!H", buf, 3, lay.record_len + delta)
    buf[6:9] = (lay.record_len - HANDSHAKE_HEADER + delta).to_bytes(3, "big")
    total = struct.unpack_from("!H", buf, lay.ext_block)[0]
    struct.pack_into("!H", buf, lay.ext_block, total + delta)


def with_host_name(buf: bytes, name: str) -> bytes:
    """The same ClientHello with another host_name in its server_name extension."""
    lay = layout(buf)
    if lay.sni_ext is None or lay.name_off is None:
        raise NotAClientHello("the ClientHello has no host_name to change")
    new = name.encode("ascii")
    delta = len(new) - lay.name_len
    out = bytearray(buf[: RECORD_HEADER + lay.record_len])
    ext_len = struct.unpack_from("!H", out, lay.sni_ext + 2)[0]
    struct.pack_into("!H", out, lay.sni_ext + 2, ext_len + delta)
    list_len = struct.unpack_from("!H", out, lay.sni_ext + 4)[0]
    struct.pack_into("!H", out, lay.sni_ext + 4, list_len + delta)
    struct.pack_into("!H", out, lay.sni_ext + 7, len(new))
    out[lay.name_off : lay.name_off + lay.name_len] = new
    _fix_lengths(out, lay, delta)
    return bytes(out) + buf[RECORD_HEADER + lay.record_len :]


def pad_to(buf: bytes, size: int) -> bytes:
    """Grow the ClientHello record to ``size`` bytes (header included) with a padding extension;
    an existing padding extension is grown instead. A hello already that big is left as is."""
    lay = layout(buf)
    current = RECORD_HEADER + lay.record_len
    if current >= size:
        return buf
    out = bytearray(buf[:current])
    existing = next((e for e in lay.extensions if e[0] == EXT_PADDING), None)
    if existing is not None:
        _, off, elen = existing
        grow = size - current
        struct.pack_into("!H", out, off + 2, elen + grow)
        out[off + 4 + elen : off + 4 + elen] = bytes(grow)
    else:
        grow = max(size - current, 4)
        out += struct.pack("!HH", EXT_PADDING, grow - 4) + bytes(grow - 4)
    _fix_lengths(out, lay, grow)
    return bytes(out) + buf[current:]


def split_records(buf: bytes, cuts: list[int]) -> bytes:
    """The one ClientHello record as several records, cut at offsets into the handshake message
    (each record gets a header with the original record's type and version)."""
    lay = layout(buf)
    body = buf[RECORD_HEADER : RECORD_HEADER + lay.record_len]
    points = sorted({c for c in cuts if 0 < c < len(body)})
    if not points:
        raise ValueError(f"no cut inside the {len(body)}-byte handshake message: {cuts}")
    out = bytearray()
    start = 0
    for point in [*points, len(body)]:
        out += buf[:3] + struct.pack("!H", point - start) + body[start:point]
        start = point
    return bytes(out) + buf[RECORD_HEADER + lay.record_len :]


# A record in front of the ClientHello (CP-THR §3: a CCS record first defeats the 2021 parser).
PREFIX_BODIES = {
    "ccs": (20, b"\x01"),
    "alert": (21, b"\x01\x00"),  # warning, close_notify
    "appdata": (23, bytes(16)),
    "heartbeat": (24, b"\x01\x00\x00"),
}


def prefix_record(kind: str, version: bytes = b"\x03\x01") -> bytes:
    """The record put before the ClientHello, with the ClientHello record's version."""
    ctype, body = PREFIX_BODIES[kind]
    return bytes([ctype]) + version + struct.pack("!H", len(body)) + body


def sni_middle(buf: bytes) -> int | None:
    """Offset of the middle of the host name in a one-record ClientHello (a cut there leaves the
    whole name in neither part); None for anything else."""
    try:
        lay = layout(buf)
    except NotAClientHello:
        return None
    if lay.name_off is None:
        return None
    return lay.name_off + max(1, lay.name_len // 2)


def build_client_hello(sni: str, *, size: int | None = None, seed: bytes | None = None) -> bytes:
    """A well-formed TLS 1.3 ClientHello record for ``sni`` (the decoy of fake packets; also what
    tests feed the DPI parser). ``size`` pads it to that many bytes."""
    rnd = seed if seed is not None else os.urandom(32)
    name = sni.encode("ascii")
    ext = bytearray()

    def add(etype: int, body: bytes) -> None:
        ext.extend(struct.pack("!HH", etype, len(body)) + body)

    add(EXT_SERVER_NAME, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    add(0x000A, struct.pack("!H", 4) + struct.pack("!HH", 0x001D, 0x0017))  # supported_groups
    add(0x000D, struct.pack("!H", 6) + struct.pack("!HHH", 0x0403, 0x0804, 0x0401))  # sig algs
    alpn = b"\x02h2\x08http/1.1"
    add(0x0010, struct.pack("!H", len(alpn)) + alpn)  # ALPN
    add(0x002B, b"\x04\x03\x04\x03\x03")  # supported_versions: 1.3, 1.2
    add(0x0033, struct.pack("!HHH", 36, 0x001D, 32) + rnd)  # key_share x25519
    suites = struct.pack("!HHH", 0x1301, 0x1302, 0x1303)
    body = (
        b"\x03\x03" + rnd + b"\x20" + rnd
        + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
        + struct.pack("!H", len(ext)) + bytes(ext)
    )  # fmt: skip
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    record = b"\x16\x03\x01" + struct.pack("!H", len(msg)) + msg
    return pad_to(record, size) if size else record
