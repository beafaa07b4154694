"""The classifier's vocabulary: protocols, the verdict, and the per-flow inspection state.

Split from classify.py so the TCP and UDP halves of the classifier share them without an import
cycle; ``tspulab.dpi.classify`` re-exports ``Protocol`` and ``Classification``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tspulab.dpi import quic, quic_detect
from tspulab.dpi.reassembly import TcpStream
from tspulab.dpi.tls import ClientHello


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


@dataclass(frozen=True, slots=True)
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
    hello: ClientHello | None = field(default=None, repr=False)
    """The ClientHello that decided it (TLS, QUIC, DTLS, Tor), for its fingerprints."""
    transport: str = "t"
    """JA4's transport letter: "t" (TCP), "q" (QUIC), "d" (DTLS)."""

    # JA3 and JA4 are computed on first read (cached on the ClientHello): most consumers of a
    # verdict never read them, and computing both cost ~30 µs per ClientHello, about a sixth of
    # the whole replay time on handshake-heavy traffic (docs/dpi.md, "Throughput").
    @property
    def ja3(self) -> str | None:
        """JA3 text of the deciding ClientHello, or None."""
        return None if self.hello is None else self.hello.ja3

    @property
    def ja4(self) -> str | None:
        """JA4 of the deciding ClientHello with this flow's transport letter, or None."""
        return None if self.hello is None else self.transport + self.hello.ja4_tail


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
    note: str = ""
