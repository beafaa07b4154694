"""TLS record headers and the ClientHello, as a DPI box reads them, with JA3 and JA4.

What is modelled: the TLS record layer header (RFC 8446 §5.1) and the ClientHello handshake message
(RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) down to the extensions a censor keys on: server_name (RFC 6066
§3), ALPN (RFC 7301), supported_versions, supported_groups, signature_algorithms, ec_point_formats
and encrypted_client_hello (draft-ietf-tls-esni, type 0xfe0d). Nothing is decrypted or validated
beyond framing: the parser answers "what would a middlebox see", not "would a server accept it".

Choices a censor model needs to state:
- Extensions are kept in wire order with duplicates (a real server rejects duplicates, RFC 8446
  §4.2; a DPI box must still read them). The *first* server_name / ALPN / ... extension wins.
- ``sni`` is the host_name exactly as sent: no lowercasing, the trailing dot kept. Normalising is
  the policy's business (``normalise_hostname``), because case and trailing-dot tricks are
  circumvention techniques whose effect depends on the censor.
- An unknown extension's body is opaque; a *known* extension with a body that contradicts its own
  lengths is ``Malformed`` (naming the extension), as is any length running past its container.
  Running out of bytes is ``NeedData``.

Fingerprints: JA3 (Salesforce, github.com/salesforce/ja3: ``version,ciphers,extensions,groups,
point_formats`` in decimal, GREASE removed, md5) and JA4 (FoxIO, github.com/FoxIO-LLC/ja4,
technical_details/JA4.md: ``{t|q|d}{version}{d|i}{nn ciphers}{nn extensions}{alpn first+last}_
{sha256(sorted ciphers)[:12]}_{sha256(sorted extensions minus SNI/ALPN + "_" + sig algs)[:12]}``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from tspulab.dpi.errors import Malformed, NeedData

RECORD_HEADER_LEN = 5
MAX_RECORD_PAYLOAD = 16384 + 2048  # RFC 8446 §5.2: TLSCiphertext may exceed plaintext by 2048


class ContentType(IntEnum):
    """TLS record content types (RFC 8446 §5.1)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class HandshakeType(IntEnum):
    CLIENT_HELLO = 1
    SERVER_HELLO = 2


class Ext(IntEnum):
    """Extension code points a DPI box reads (IANA TLS ExtensionType registry)."""

    SERVER_NAME = 0x0000
    SUPPORTED_GROUPS = 0x000A
    EC_POINT_FORMATS = 0x000B
    SIGNATURE_ALGORITHMS = 0x000D
    ALPN = 0x0010
    SUPPORTED_VERSIONS = 0x002B
    ENCRYPTED_CLIENT_HELLO = 0xFE0D


_CONTENT_TYPES = frozenset(int(t) for t in ContentType)
# Plain ints for the hot loops: comparing against an IntEnum member costs an attribute lookup.
_SERVER_NAME = int(Ext.SERVER_NAME)
_ALPN = int(Ext.ALPN)
_SUPPORTED_VERSIONS = int(Ext.SUPPORTED_VERSIONS)
_SUPPORTED_GROUPS = int(Ext.SUPPORTED_GROUPS)
_EC_POINT_FORMATS = int(Ext.EC_POINT_FORMATS)
_SIGNATURE_ALGORITHMS = int(Ext.SIGNATURE_ALGORITHMS)
_ENCRYPTED_CLIENT_HELLO = int(Ext.ENCRYPTED_CLIENT_HELLO)


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x?a?a with equal bytes."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


_GREASE = frozenset(v for v in range(0x10000) if is_grease(v))
"""The 16 GREASE values, for set membership in the fingerprint loops."""


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """One TLS record header (RFC 8446 §5.1)."""

    content_type: int
    version: int
    length: int
    """Length of the record payload that follows the 5-byte header."""


def parse_record_header(data: bytes, offset: int = 0) -> RecordHeader:
    """Read a record header at ``offset``; Malformed if it cannot be TLS, NeedData if short."""
    if len(data) - offset < RECORD_HEADER_LEN:
        raise NeedData(f"TLS record header needs 5 bytes, have {len(data) - offset}")
    ctype = data[offset]
    if ctype not in _CONTENT_TYPES:
        raise Malformed(f"TLS record: content type {ctype} is not a TLS content type")
    version = (data[offset + 1] << 8) | data[offset + 2]
    if data[offset + 1] != 0x03 or data[offset + 2] > 0x04:
        raise Malformed(f"TLS record: version 0x{version:04x} is not SSL3/TLS1.x")
    length = (data[offset + 3] << 8) | data[offset + 4]
    if length == 0 or length > MAX_RECORD_PAYLOAD:
        raise Malformed(f"TLS record: length {length} outside 1..{MAX_RECORD_PAYLOAD}")
    return RecordHeader(ctype, version, length)


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A parsed ClientHello (RFC 8446 §4.1.2) with what a censor reads from it."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: tuple[tuple[int, bytes], ...]
    """(type, raw data) in wire order, duplicates kept."""
    sni: str | None
    """server_name host_name as sent (not lowercased), None if absent."""
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]
    supported_groups: tuple[int, ...]
    ec_point_formats: bytes
    signature_algorithms: tuple[int, ...]
    has_ech: bool
    """encrypted_client_hello (0xfe0d) present."""
    # Fingerprints are computed on first use and cached here: most readers of a ClientHello
    # (policy, Tor traits, the QUIC path that wants only the "q" JA4) never need all of them.
    _ja3: str | None = field(default=None, init=False, repr=False, compare=False)
    _ja3_hash: str | None = field(default=None, init=False, repr=False, compare=False)
    _ja4_tail: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def extension_types(self) -> tuple[int, ...]:
        """Extension code points in wire order, duplicates kept."""
        return tuple([t for t, _ in self.extensions])

    @property
    def ja3(self) -> str:
        """JA3 text: ``version,ciphers,extensions,groups,point_formats``, GREASE removed."""
        text = self._ja3
        if text is None:
            text = ja3_text(self)
            object.__setattr__(self, "_ja3", text)
        return text

    @property
    def ja3_hash(self) -> str:
        """md5 of ``ja3``, hex."""
        digest = self._ja3_hash
        if digest is None:
            digest = hashlib.md5(self.ja3.encode(), usedforsecurity=False).hexdigest()
            object.__setattr__(self, "_ja3_hash", digest)
        return digest

    @property
    def ja4(self) -> str:
        """JA4 with the ``t`` (TCP) prefix; ``ja4_fingerprint(ch, "q")`` gives the QUIC form."""
        return "t" + self.ja4_tail

    @property
    def ja4_tail(self) -> str:
        """JA4 without its one-character transport prefix (the same for ``t``, ``q``, ``d``)."""
        tail = self._ja4_tail
        if tail is None:
            tail = ja4_tail_text(self)
            object.__setattr__(self, "_ja4_tail", tail)
        return tail


def _u16_list(body: bytes, name: str) -> tuple[int, ...]:
    """A list of uint16 preceded by a uint16 byte length (groups, sig algs)."""
    if len(body) < 2:
        raise Malformed(f"{name}: extension body of {len(body)} bytes has no length")
    n = (body[0] << 8) | body[1]
    if n != len(body) - 2 or n % 2:
        raise Malformed(f"{name}: list length {n} does not match body of {len(body) - 2} bytes")
    return u16s(body, 2, n >> 1)


def u16s(data: bytes, offset: int, count: int) -> tuple[int, ...]:
    """``count`` big-endian uint16 at ``offset``, in one C call (the ClientHello's lists are on
    every flow's path; a Python loop over byte pairs cost several times more)."""
    unpack = _U16_UNPACKERS.get(count)
    if unpack is None:
        unpack = struct.Struct(f"!{count}H").unpack_from
        if len(_U16_UNPACKERS) < 512:
            _U16_UNPACKERS[count] = unpack
    return unpack(data, offset)


_U16_UNPACKERS: dict[int, Callable[[bytes, int], tuple[int, ...]]] = {}


def _parse_sni(body: bytes) -> str | None:
    """RFC 6066 §3 ServerNameList; the first host_name (type 0) entry."""
    if len(body) < 2:
        raise Malformed("server_name: body too short for its list length")
    n = (body[0] << 8) | body[1]
    if n != len(body) - 2:
        raise Malformed(f"server_name: list length {n} != body {len(body) - 2}")
    pos = 2
    while pos < len(body):
        if pos + 3 > len(body):
            raise Malformed("server_name: entry header runs past the list")
        name_type = body[pos]
        name_len = (body[pos + 1] << 8) | body[pos + 2]
        pos += 3
        if pos + name_len > len(body):
            raise Malformed(f"server_name: name length {name_len} runs past the list")
        if name_type == 0:
            return body[pos : pos + name_len].decode("ascii", errors="replace")
        pos += name_len
    return None


def _parse_alpn(body: bytes) -> tuple[str, ...]:
    """RFC 7301 §3.1 ProtocolNameList."""
    if len(body) < 2:
        raise Malformed("alpn: body too short for its list length")
    n = (body[0] << 8) | body[1]
    if n != len(body) - 2:
        raise Malformed(f"alpn: list length {n} != body {len(body) - 2}")
    out: list[str] = []
    pos = 2
    while pos < len(body):
        plen = body[pos]
        if plen == 0 or pos + 1 + plen > len(body):
            raise Malformed(f"alpn: protocol name length {plen} is empty or runs past the list")
        out.append(body[pos + 1 : pos + 1 + plen].decode("ascii", errors="replace"))
        pos += 1 + plen
    return tuple(out)


def _parse_supported_versions(body: bytes) -> tuple[int, ...]:
    """RFC 8446 §4.2.1, client form: a uint8 byte length then uint16 versions."""
    if not body or body[0] != len(body) - 1 or body[0] % 2:
        raise Malformed("supported_versions: list length does not match the body")
    return u16s(body, 1, len(body) >> 1)


def _parse_point_formats(body: bytes) -> bytes:
    if not body or body[0] != len(body) - 1:
        raise Malformed("ec_point_formats: list length does not match the body")
    return bytes(body[1:])


def parse_client_hello_message(msg: bytes) -> ClientHello:
    """`msg` is one handshake message starting with type 0x01 and its 3-byte length (no TLS
    record header). Raises NeedData / Malformed. Used by A for TCP and by B for QUIC CRYPTO data
    and DTLS. Bytes after the message are ignored."""
    if len(msg) < 4:
        raise NeedData(f"handshake header needs 4 bytes, have {len(msg)}")
    if msg[0] != HandshakeType.CLIENT_HELLO:
        raise Malformed(f"handshake type {msg[0]} is not ClientHello (1)")
    body_len = (msg[1] << 8 | msg[2]) << 8 | msg[3]
    if len(msg) - 4 < body_len:
        raise NeedData(f"ClientHello of {body_len} bytes, have {len(msg) - 4}")
    return _parse_client_hello_body(bytes(msg[4 : 4 + body_len]))


def _parse_client_hello_body(b: bytes) -> ClientHello:
    end = len(b)
    if end < 38:
        raise Malformed(f"ClientHello body of {end} bytes is shorter than version+random+sid")
    legacy_version = (b[0] << 8) | b[1]
    random = b[2:34]
    sid_len = b[34]
    if sid_len > 32:
        raise Malformed(f"ClientHello: session_id length {sid_len} > 32")
    pos = 35 + sid_len
    if pos + 2 > end:
        raise Malformed("ClientHello: session_id runs past the message")
    session_id = b[35:pos]
    cs_len = (b[pos] << 8) | b[pos + 1]
    pos += 2
    if cs_len % 2 or pos + cs_len > end:
        raise Malformed(f"ClientHello: cipher_suites length {cs_len} is odd or runs past the end")
    ciphers = u16s(b, pos, cs_len >> 1)
    pos += cs_len
    if pos >= end:
        raise Malformed("ClientHello: no compression_methods")
    cm_len = b[pos]
    if pos + 1 + cm_len > end:
        raise Malformed(f"ClientHello: compression_methods length {cm_len} runs past the end")
    compression = b[pos + 1 : pos + 1 + cm_len]
    pos += 1 + cm_len
    extensions: list[tuple[int, bytes]] = []
    if pos < end:  # extensions are optional before TLS 1.3 (RFC 5246 §7.4.1.2)
        if pos + 2 > end:
            raise Malformed("ClientHello: extensions length cut short")
        ext_total = (b[pos] << 8) | b[pos + 1]
        pos += 2
        if pos + ext_total != end:
            raise Malformed(f"ClientHello: extensions length {ext_total} != {end - pos} remaining")
        while pos < end:
            if pos + 4 > end:
                raise Malformed("ClientHello: extension header runs past the block")
            etype = (b[pos] << 8) | b[pos + 1]
            elen = (b[pos + 2] << 8) | b[pos + 3]
            pos += 4
            if pos + elen > end:
                raise Malformed(f"ClientHello: extension 0x{etype:04x} length {elen} runs past")
            extensions.append((etype, b[pos : pos + elen]))
            pos += elen
    return _build(legacy_version, random, session_id, ciphers, compression, tuple(extensions))


def _build(
    legacy_version: int,
    random: bytes,
    session_id: bytes,
    ciphers: tuple[int, ...],
    compression: bytes,
    extensions: tuple[tuple[int, bytes], ...],
) -> ClientHello:
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats = b""
    sig_algs: tuple[int, ...] = ()
    has_ech = False
    seen: set[int] = set()
    for etype, body in extensions:
        if etype in seen:  # first occurrence wins
            continue
        seen.add(etype)
        if etype == _SERVER_NAME:
            sni = _parse_sni(body) if body else None  # empty body: server's ack form
        elif etype == _ALPN:
            alpn = _parse_alpn(body)
        elif etype == _SUPPORTED_VERSIONS:
            versions = _parse_supported_versions(body)
        elif etype == _SUPPORTED_GROUPS:
            groups = _u16_list(body, "supported_groups")
        elif etype == _EC_POINT_FORMATS:
            point_formats = _parse_point_formats(body)
        elif etype == _SIGNATURE_ALGORITHMS:
            sig_algs = _u16_list(body, "signature_algorithms")
        elif etype == _ENCRYPTED_CLIENT_HELLO:
            has_ech = True
    return ClientHello(
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suites=ciphers,
        compression_methods=compression,
        extensions=extensions,
        sni=sni,
        alpn=alpn,
        supported_versions=versions,
        supported_groups=groups,
        ec_point_formats=point_formats,
        signature_algorithms=sig_algs,
        has_ech=has_ech,
    )


class Fingerprinted(Protocol):
    """What JA3 and JA4 read: a ClientHello, or the compact HelloPrint kept on a verdict."""

    @property
    def legacy_version(self) -> int: ...
    @property
    def cipher_suites(self) -> tuple[int, ...]: ...
    @property
    def extension_types(self) -> tuple[int, ...]: ...
    @property
    def supported_groups(self) -> tuple[int, ...]: ...
    @property
    def ec_point_formats(self) -> bytes: ...
    @property
    def supported_versions(self) -> tuple[int, ...]: ...
    @property
    def alpn(self) -> tuple[str, ...]: ...
    @property
    def signature_algorithms(self) -> tuple[int, ...]: ...


def ja3_text(ch: Fingerprinted) -> str:
    grease = _GREASE
    return ",".join(
        (
            str(ch.legacy_version),
            "-".join([str(c) for c in ch.cipher_suites if c not in grease]),
            "-".join([str(t) for t in ch.extension_types if t not in grease]),
            "-".join([str(g) for g in ch.supported_groups if g not in grease]),
            "-".join([str(f) for f in ch.ec_point_formats]),
        )
    )


_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0200: "s2",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def _ja4_alpn(alpn: tuple[str, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    if first[0].isascii() and first[0].isalnum() and first[-1].isascii() and first[-1].isalnum():
        return first[0] + first[-1]
    hexed = first.encode("ascii", errors="replace").hex()
    return hexed[0] + hexed[-1]


def _sha12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ja4_fingerprint(ch: ClientHello, transport: str = "t") -> str:
    """JA4 of a ClientHello; ``transport`` is ``t`` (TCP), ``q`` (QUIC) or ``d`` (DTLS)."""
    return transport + ch.ja4_tail


def ja4_tail_text(ch: Fingerprinted) -> str:
    """Everything of JA4 after the transport character (cached by ``ClientHello.ja4_tail``)."""
    grease = _GREASE
    versions = [v for v in ch.supported_versions if v not in grease]
    version = _JA4_VERSIONS.get(max(versions) if versions else ch.legacy_version, "00")
    ciphers = sorted([c for c in ch.cipher_suites if c not in grease])
    ext_types = [t for t in ch.extension_types if t not in grease]
    has_sni = _SERVER_NAME in ext_types
    part_a = (
        f"{version}{'d' if has_sni else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(ext_types), 99):02d}{_ja4_alpn(ch.alpn)}"
    )
    part_b = _sha12(",".join([f"{c:04x}" for c in ciphers]))
    ext_text = ",".join([f"{t:04x}" for t in sorted(ext_types) if t != _SERVER_NAME and t != _ALPN])
    sig_text = ",".join([f"{s:04x}" for s in ch.signature_algorithms])
    part_c = _sha12(f"{ext_text}_{sig_text}" if sig_text else ext_text)
    return f"{part_a}_{part_b}_{part_c}"


def normalise_hostname(name: str) -> str:
    """The comparison form of a host name: lowercase, one trailing dot removed."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name
