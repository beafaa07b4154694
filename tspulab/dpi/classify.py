"""The classifier engine: which protocol a flow speaks, decided from its first packets' bytes.

What is modelled: a DPI box's per-flow inspection with a budget. For each new flow it feeds the
payload-carrying packets, in arrival order and in both directions, through the reassembly mode
(reassembly.py) and the detectors: TLS ClientHello (tls.py), HTTP request (http.py), QUIC Initial
(quic.py) and the fingerprints (fingerprints/: DNS, SSH, OpenVPN, WireGuard, DTLS, Tor, fully
encrypted). The first detector that matches decides; the verdict is cached on the flow, and every
later packet of that flow takes the constant-time path (one attribute read) in ``observe``.

Budget: ``inspect_packets`` counts payload-carrying packets (handshake-only TCP segments do not
use it up; netem's dpiengine uses 10, CP-THR measured 15–20 packets after a first TLS record). When
it runs out undecided, the flow is decided from what was seen: a TLS record → TLS without SNI
("the box saw TLS but no ClientHello it could read"), a QUIC long header → QUIC, an HTTP request
line → HTTP, otherwise UNKNOWN.

Detector order, and why:
- Tor relay address (either endpoint in the relay list): decided at the flow's first packet, as an
  address-list censor (Tor blocking from December 2021, tspu-behaviour.md §5.2) acts before bytes.
- Non-TCP/UDP (ICMP, GRE, ESP, ...): UNKNOWN at the first packet, with the IP protocol in detail.
- TCP: TLS record → ClientHello by mode (Tor's TLS traits make it TOR); HTTP request; SSH banner;
  DNS over TCP on port 53; OpenVPN's length-prefixed hard reset; last, the client's first data
  segment through the fully-encrypted heuristic (Wu et al. 2023, applied by the GFW to TCP only).
- UDP: DNS on port 53; QUIC long header (Initials decrypted to the ClientHello; ``none`` mode
  needs the ClientHello inside one datagram, the other modes join CRYPTO data across datagrams,
  tspu-behaviour.md §5.3); DTLS ClientHello; WireGuard; OpenVPN.

``Classification.sni`` and ``host`` are as sent (case and trailing dot kept); a DNS flow carries
its query name in ``host``. ``tls.normalise_hostname`` gives the comparison form.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from enum import StrEnum

from tspulab.dpi import quic
from tspulab.dpi.errors import DecodeError, Malformed, NeedData
from tspulab.dpi.fingerprints import dns, dtls, fully_encrypted, openvpn, ssh, tor, wireguard
from tspulab.dpi.flow import FlowState
from tspulab.dpi.http import looks_like_http_request, parse_http_request
from tspulab.dpi.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, TCP_SYN, Packet
from tspulab.dpi.reassembly import (
    NotClientHello,
    ReassemblyMode,
    TcpStream,
    find_client_hello,
    looks_like_tls_record,
)
from tspulab.dpi.tls import ClientHello, ja4_fingerprint


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
class _Inspection:
    """Per-flow state while undecided."""

    payload_packets: int = 0
    streams: list[TcpStream | None] = field(default_factory=lambda: [None, None])
    tls_done: list[bool] = field(default_factory=lambda: [False, False])
    """tcp/tls-records: the stream start was read as TLS and showed no ClientHello."""
    tls_seen: bool = False
    http_seen: bool = False
    quic_version: int | None = None
    quic_assembler: quic.QuicInitialAssembler | None = None
    client_payload_seen: bool = False
    syn_seen: bool = False
    """The client's SYN was seen, so its first data segment is the connection's first."""
    note: str = ""


class Classifier:
    """Per-flow protocol classification; one instance serves a whole flow table."""

    def __init__(
        self,
        reassembly: str = "none",
        tor_relays: frozenset[str] = frozenset(),
        inspect_packets: int = 10,
    ) -> None:
        self.mode = ReassemblyMode(reassembly)
        self.tor_relays = tor_relays
        self.inspect_packets = inspect_packets

    def observe(self, pkt: Packet, flow: FlowState, now: float) -> Classification | None:
        """Inspect one packet of ``flow`` (already looked up); the verdict once decided."""
        decided = flow.classification
        if decided is not None:
            return decided
        try:
            return self._observe(pkt, flow)
        except DecodeError as err:  # a detector's bad-input outcome must not end the flow
            insp = flow.inspection
            if isinstance(insp, _Inspection):
                insp.note = f"{type(err).__name__}: {err}"
            return None

    def conclude(self, flow: FlowState) -> Classification:
        """The flow's verdict, or the best guess from what was seen if still undecided (the
        flow ended first); the guess has ``decided_at=None`` and is not cached."""
        if flow.classification is not None:
            return flow.classification
        return self._best_guess(flow, None)

    # --- inspection ------------------------------------------------------------------------

    def _observe(self, pkt: Packet, flow: FlowState) -> Classification | None:
        insp = flow.inspection
        if not isinstance(insp, _Inspection):
            insp = flow.inspection = _Inspection()
            if self.tor_relays and self._tor_relay(flow):
                return self._decide(flow, Protocol.TOR, detail="tor relay address")
        if pkt.proto != PROTO_TCP and pkt.proto != PROTO_UDP:
            kind = "icmp" if pkt.proto in (PROTO_ICMP, PROTO_ICMPV6) else f"ip proto {pkt.proto}"
            return self._decide(flow, Protocol.UNKNOWN, detail=kind)
        if not pkt.has_l4:
            return None  # a non-first fragment: no transport header, nothing to inspect
        direction = 0 if flow.from_client else 1
        if pkt.proto == PROTO_TCP and pkt.tcp_flags & TCP_SYN:
            insp.syn_seen = True
            if self.mode is not ReassemblyMode.NONE:
                self._stream(insp, direction).syn(pkt.seq)
        payload = pkt.payload
        if not payload:
            return None
        insp.payload_packets += 1
        if pkt.proto == PROTO_TCP:
            verdict = self._inspect_tcp(pkt, flow, insp, direction)
        else:
            verdict = self._inspect_udp(pkt, flow, insp)
        if flow.from_client:
            insp.client_payload_seen = True
        if verdict is None and insp.payload_packets >= self.inspect_packets:
            verdict = self._best_guess(flow, flow.packets)
            flow.classification = verdict
            flow.inspection = None
        return verdict

    def _stream(self, insp: _Inspection, direction: int) -> TcpStream:
        stream = insp.streams[direction]
        if stream is None:
            stream = insp.streams[direction] = TcpStream()
        return stream

    def _inspect_tcp(
        self, pkt: Packet, flow: FlowState, insp: _Inspection, direction: int
    ) -> Classification | None:
        payload = pkt.payload
        if self.mode is ReassemblyMode.NONE:
            data = payload
        else:
            stream = self._stream(insp, direction)
            if not stream.feed(pkt.seq, payload):
                return None  # a retransmission or an out-of-order segment: nothing new in order
            data = bytes(stream.data)
        if looks_like_tls_record(data) and not insp.tls_done[direction]:
            verdict = self._tls(flow, insp, data, direction)
            if verdict is not None or insp.tls_seen:
                return verdict
        if looks_like_http_request(data):
            verdict = self._http(flow, insp, data)
            if verdict is not None or insp.http_seen:
                return verdict
        if ssh.match(payload) is not None:
            return self._decide(flow, Protocol.SSH, detail="ssh banner")
        if 53 in (flow.server_port, flow.client_port) and len(payload) > 2:
            dns_match = dns.match_udp(payload[2:])
            if dns_match is not None:
                return self._decide(flow, Protocol.DNS, host=dns_match.qname, detail="dns over tcp")
        vpn = openvpn.match_tcp(payload, flow.from_client)
        if vpn is not None:
            return self._decide(flow, Protocol.OPENVPN, detail=_describe("openvpn tcp", vpn))
        if flow.from_client and not insp.client_payload_seen and insp.syn_seen:
            # The rule judges a connection's first data packet; mid-connection pickups are exempt.
            fe = fully_encrypted.match(payload)
            if fe is not None:
                return self._decide(
                    flow, Protocol.FULLY_ENCRYPTED, detail=_describe("first client packet", fe)
                )
        return None

    def _tls(
        self, flow: FlowState, insp: _Inspection, data: bytes, direction: int
    ) -> Classification | None:
        try:
            scan = find_client_hello(data, self.mode)
        except NeedData as err:
            insp.tls_seen = True
            insp.note = f"ClientHello incomplete: {err}"
            return None
        except NotClientHello as err:
            insp.tls_seen = True
            insp.note = str(err)
            if self.mode is not ReassemblyMode.NONE:
                insp.tls_done[direction] = True  # the stream start will not change
            return None
        except Malformed as err:
            insp.note = f"not a readable TLS record: {err}"
            if self.mode is not ReassemblyMode.NONE:
                insp.tls_done[direction] = True
            return None
        ch = scan.client_hello
        detail = "client hello" if scan.records == 1 else f"client hello in {scan.records} records"
        if not flow.from_client:
            detail += " from server side"
        protocol = Protocol.TOR if tor.tls_traits(ch) else Protocol.TLS
        return self._decide_hello(flow, protocol, ch, ch.ja4, detail)

    def _http(self, flow: FlowState, insp: _Inspection, data: bytes) -> Classification | None:
        try:
            request = parse_http_request(data)
        except NeedData:
            insp.http_seen = True
            return None
        except Malformed as err:
            insp.note = f"not HTTP: {err}"
            return None
        insp.http_seen = True
        waiting = request.host is None and not request.headers_complete
        if waiting and self.mode is not ReassemblyMode.NONE:
            return None  # the stream may bring the Host header
        detail = f"{request.method} {request.path[:200]}"
        return self._decide(flow, Protocol.HTTP, host=request.host, detail=detail)

    def _inspect_udp(
        self, pkt: Packet, flow: FlowState, insp: _Inspection
    ) -> Classification | None:
        payload = pkt.payload
        from_client = flow.from_client
        if 53 in (pkt.sport, pkt.dport):
            dns_match = dns.match_udp(payload)
            if dns_match is not None:
                return self._decide(flow, Protocol.DNS, host=dns_match.qname, detail="dns")
        if payload[0] & 0x80:
            verdict = self._quic(pkt, flow, insp)
            if verdict is not None or insp.quic_version is not None:
                return verdict
        elif from_client:
            gquic = google_quic_version(payload)
            if gquic is not None:
                insp.quic_version = gquic
                return self._decide(
                    flow, Protocol.QUIC, detail=f"gquic {gquic.to_bytes(4, 'big').decode()}"
                )
        dtls_match = dtls.match_client_hello(payload)
        if dtls_match is not None:
            ch = dtls_match.client_hello
            if ch is None:
                return self._decide(flow, Protocol.DTLS, detail="dtls client hello")
            return self._decide_hello(
                flow, Protocol.DTLS, ch, ja4_fingerprint(ch, "d"), "dtls client hello"
            )
        wg = wireguard.match(payload, from_client)
        if wg is not None:
            return self._decide(flow, Protocol.WIREGUARD, detail=_describe("wireguard", wg))
        vpn = openvpn.match_udp(payload, from_client)
        if vpn is not None:
            return self._decide(flow, Protocol.OPENVPN, detail=_describe("openvpn udp", vpn))
        if flow.packets_from_server == 0:
            # Only one side seen (asymmetric routing, or the capture missed the client): the first
            # sender may be the server, so a server hard reset from it still names OpenVPN.
            vpn = openvpn.match_udp(payload, False)
            if vpn is not None:
                detail = _describe("openvpn udp", vpn) + ", one direction seen"
                return self._decide(flow, Protocol.OPENVPN, detail=detail)
        return None

    def _quic(self, pkt: Packet, flow: FlowState, insp: _Inspection) -> Classification | None:
        payload = pkt.payload
        try:
            header = quic.parse_long_header(payload)
        except DecodeError:
            return None
        if not (header.supported or _known_quic_family(header.version)):
            return None  # only the version-independent invariants hold: too weak on their own
        insp.quic_version = header.version
        if not flow.from_client:
            return None  # server Initials use server keys; the client's side decides
        if self.mode is ReassemblyMode.NONE or insp.quic_assembler is None:
            # none: the ClientHello must be complete inside this one datagram; the flow's derived
            # Initial keys are kept (same DCID, same keys), the CRYPTO data is not
            insp.quic_assembler = quic.QuicInitialAssembler(keys_from=insp.quic_assembler)
        progress = insp.quic_assembler.feed(payload)
        if progress.client_hello is None:
            insp.note = f"quic {progress.outcome}"
            return None
        ch = progress.client_hello
        rule = " 2022-rule" if quic.matches_2022_quic_rule(pkt.dport, payload) else ""
        return self._decide_hello(
            flow,
            Protocol.QUIC,
            ch,
            progress.ja4 or ja4_fingerprint(ch, "q"),
            f"quic initial{rule}",
            quic_version=progress.version,
        )

    # --- verdicts --------------------------------------------------------------------------

    def _tor_relay(self, flow: FlowState) -> bool:
        return any(
            tor.is_relay(_address_text(addr), self.tor_relays)
            for addr in (flow.server_addr, flow.client_addr)
        )

    def _decide(
        self,
        flow: FlowState,
        protocol: Protocol,
        *,
        host: str | None = None,
        detail: str = "",
    ) -> Classification:
        verdict = Classification(
            protocol=protocol,
            decided_at=flow.packets,
            host=host,
            detail=detail,
            reassembly=self.mode.value,
        )
        flow.classification = verdict
        flow.inspection = None  # decided: the per-flow buffers are no longer needed
        return verdict

    def _decide_hello(
        self,
        flow: FlowState,
        protocol: Protocol,
        ch: ClientHello,
        ja4: str,
        detail: str,
        quic_version: int | None = None,
    ) -> Classification:
        verdict = Classification(
            protocol=protocol,
            decided_at=flow.packets,
            sni=ch.sni,
            alpn=ch.alpn,
            ja3=ch.ja3,
            ja4=ja4,
            has_ech=ch.has_ech,
            quic_version=quic_version,
            detail=detail,
            reassembly=self.mode.value,
        )
        flow.classification = verdict
        flow.inspection = None
        return verdict

    def _best_guess(self, flow: FlowState, decided_at: int | None) -> Classification:
        insp = flow.inspection
        protocol = Protocol.UNKNOWN
        quic_version = None
        reason = "budget exhausted" if decided_at is not None else "flow ended undecided"
        note = ""
        if isinstance(insp, _Inspection):
            note = insp.note
            if insp.tls_seen:
                protocol = Protocol.TLS
            elif insp.quic_version is not None:
                protocol, quic_version = Protocol.QUIC, insp.quic_version
            elif insp.http_seen:
                protocol = Protocol.HTTP
        detail = f"{reason}: {note}" if note else reason
        return Classification(
            protocol=protocol,
            decided_at=decided_at,
            quic_version=quic_version,
            detail=detail,
            reassembly=self.mode.value,
        )


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


def _known_quic_family(version: int) -> bool:
    """QUIC versions outside quic.py's decryptable set that are still certainly QUIC: Google's
    Q046+/T0xx tags and Meta's mvfst (0xfaceb00x), per the IANA QUIC version registry."""
    tag = version.to_bytes(4, "big")
    return tag[:2] in (b"Q0", b"T0") or version & 0xFFFFFFF0 == 0xFACEB000


def _address_text(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def _describe(prefix: str, match: object) -> str:
    """A short detail string from a fingerprint match: its ``kind``/``detail`` if it has one."""
    for name in ("detail", "wrapping", "kind", "variant"):
        value = getattr(match, name, None)
        if isinstance(value, str) and value:
            return f"{prefix} {value}"
    return prefix
