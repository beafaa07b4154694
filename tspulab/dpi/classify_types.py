"""The classifier's vocabulary: protocols, the verdict, and the per-flow inspection state.

Split from classify.py so the TCP and UDP halves of the classifier share them without an import
cycle; ``tspulab.dpi.classify`` re-exports ``Protocol`` and ``Classification``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tspulab.dpi import quic, quic_detect
from tspulab.dpi.reassembly import TcpStream


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
    ja3: str | None = None
    ja4: str | None = None
    has_ech: bool = False
    quic_version: int | None = None
    detail: str = ""
    """What decided it, e.g. "openvpn tls-crypt", "wg initiation", "budget exhausted"."""
    reassembly: str = "none"
    """The mode used: "none" | "tcp" | "tls-records"."""


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
