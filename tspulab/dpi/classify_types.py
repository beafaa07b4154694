"""The classifier's vocabulary: protocols, the verdict, and the per-flow inspection state.

Split from classify.py so the TCP and UDP halves of the classifier share them without an import
cycle; ``tspulab.dpi.classify`` re-exports ``Protocol`` and ``Classification``.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from enum import StrEnum

from tspulab.dpi import quic, quic_detect
from tspulab.dpi.reassembly import TcpStream
from tspulab.dpi.tls import ClientHello, ja3_text, ja4_tail_text


class Protocol(StrEnum):
    UNKNOWN = "unknown"
    TLS = "tls"
    HTTP = "http"
    QUIC = "quic"
    DTLS = "dtls"
    OPENVPN = "openvpn"
    WIREGUARD = "wireguard"
    TOR = "tor"
    SSH = "ssh"
    DNS = "dns"
    FULLY_ENCRYPTED = "fully-encrypted"
    TUNNELLED_HTTPS = "tunnelled-https"
    """Not a detector of the classifier: the engine's size pattern of §5.5 (tunnelled_https.py)."""


@dataclass(frozen=True, slots=True, eq=False)
class Classification:
    protocol: Protocol
    decided_at: int | None
    """1-based packet index in the flow (both directions) at which it was decided; None when the
    flow ended (capture end, expiry) before a decision and this is the best guess at that time."""
    sni: str | None = None
    host: str | None = None
    alpn: tuple[str, ...] = ()
    has_ech: bool = False
    quic_version: int | None = None
    detail: str = ""
    """What decided it, e.g. "openvpn tls-crypt", "wg initiation", "budget exhausted"."""
    reassembly: str = "none"
    """The mode used: "none" | "tcp" | "tls-records"."""
    hello: HelloPrint | None = field(default=None, repr=False, compare=False)
    """What JA3/JA4 need of the deciding ClientHello (TLS, QUIC, DTLS, Tor), kept small."""
    transport: str = "t"
    """JA4's transport letter: "t" (TCP), "q" (QUIC), "d" (DTLS)."""

    # JA3 and JA4 are computed on first read (and cached): most consumers of a verdict never read
    # them, and computing both cost ~30 µs per ClientHello on every TLS/QUIC flow (docs/dpi.md,
    # "Throughput"). They take part in equality, as the fields they replaced did.
    @property
    def ja3(self) -> str | None:
        """JA3 text of the deciding ClientHello, or None."""
        return None if self.hello is None else self.hello.ja3

    @property
    def ja4(self) -> str | None:
        """JA4 of the deciding ClientHello with this flow's transport letter, or None."""
        return None if self.hello is None else self.transport + self.hello.ja4_tail

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Classification):
            return NotImplemented
        return self._key() == other._key() and (self.ja3, self.ja4) == (other.ja3, other.ja4)

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (
            self.protocol, self.decided_at, self.sni, self.host, self.alpn, self.has_ech,
            self.quic_version, self.detail, self.reassembly, self.transport,
        )  # fmt: skip


@dataclass(slots=True)
class Inspection:
    """Per-flow state while undecided."""

    payload_packets: int = 0
    streams: list[TcpStream | None] = field(default_factory=lambda: [None, None])
    tls_done: set[tuple[int, int]] = field(default_factory=set)
    """tcp/tls-records: (direction, stream offset) read as TLS that showed no ClientHello."""
    tls_seen: bool = False
    http_seen: bool = False
    quic_version: int | None = None
    quic_assembler: quic.QuicInitialAssembler | None = None
    quic_short: quic_detect.ShortHeaderTracker | None = None
    quic_0rtt: int = 0
    client_payload_seen: bool = False
    syn_seen: bool = False
    """The client's SYN was seen, so its first data segment is the connection's first."""
    connect: str | None = None
    """The authority of the client's HTTP CONNECT request: the flow is a proxy tunnel, and the
    bytes after the request and the proxy's 2xx reply are the tunnel's (classify.py)."""
    tunnel_at: list[int] = field(default_factory=lambda: [-1, -1])
    """Stream modes: the stream offset, per direction, where the tunnel's bytes begin (-1: not
    known yet)."""
    note: str = ""


class HelloPrint:
    """The parts of a ClientHello that JA3 and JA4 read, packed small (uint16 lists as bytes):
    what a verdict keeps so its fingerprints can be computed on first read without holding the
    whole ClientHello (extension bodies, random, session id: ~3 kB a flow more, measured)."""

    __slots__ = (
        "_ciphers", "_ext_types", "_groups", "_ja3", "_ja4_tail", "_sig_algs", "_versions",
        "alpn", "ec_point_formats", "legacy_version",
    )  # fmt: skip

    def __init__(self, ch: ClientHello) -> None:
        self.legacy_version = ch.legacy_version
        self._ciphers = _pack16(ch.cipher_suites)
        self._ext_types = _pack16(ch.extension_types)
        self._groups = _pack16(ch.supported_groups)
        self._sig_algs = _pack16(ch.signature_algorithms)
        self._versions = _pack16(ch.supported_versions)
        self.ec_point_formats = ch.ec_point_formats
        self.alpn = ch.alpn[:1]  # JA4 reads the first value only
        self._ja3 = ch._ja3
        self._ja4_tail = ch._ja4_tail

    cipher_suites = property(lambda self: _unpack16(self._ciphers))
    extension_types = property(lambda self: _unpack16(self._ext_types))
    supported_groups = property(lambda self: _unpack16(self._groups))
    signature_algorithms = property(lambda self: _unpack16(self._sig_algs))
    supported_versions = property(lambda self: _unpack16(self._versions))

    @property
    def ja3(self) -> str:
        if self._ja3 is None:
            self._ja3 = ja3_text(self)
        return self._ja3

    @property
    def ja4_tail(self) -> str:
        if self._ja4_tail is None:
            self._ja4_tail = ja4_tail_text(self)
        return self._ja4_tail


def _pack16(values: tuple[int, ...]) -> bytes:
    """uint16 values as bytes in host order (an array's own buffer is ~50 B larger per list)."""
    return array("H", values).tobytes()


def _unpack16(data: bytes) -> tuple[int, ...]:
    return tuple(memoryview(data).cast("H"))
