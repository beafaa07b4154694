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

from tspulab.dpi.classify_types import Classification, HelloPrint, Inspection, Protocol
from tspulab.dpi.classify_udp import UdpInspection, describe
from tspulab.dpi.errors import DecodeError, Malformed, NeedData
from tspulab.dpi.fingerprints import dns, fully_encrypted, openvpn, ssh, tor
from tspulab.dpi.flow import FlowState
from tspulab.dpi.http import http_response_status, looks_like_http_request, parse_http_request
from tspulab.dpi.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, TCP_SYN, Packet
from tspulab.dpi.quic_detect import google_quic_version
from tspulab.dpi.reassembly import (
    NotClientHello,
    OverlapPolicy,
    ReassemblyMode,
    TcpStream,
    client_hello_record,
    find_client_hello,
    looks_like_tls_record,
    preamble_kind,
)
from tspulab.dpi.tls import ClientHello

__all__ = ["Classification", "Classifier", "Protocol", "google_quic_version"]


class Classifier(UdpInspection):
    """Per-flow protocol classification; one instance serves a whole flow table."""

    def __init__(
        self,
        reassembly: str = "none",
        tor_relays: frozenset[str] = frozenset(),
        inspect_packets: int = 10,
        overlap: str = "longest",
        join_quic_initials: bool | None = None,
    ) -> None:
        self.mode = ReassemblyMode(reassembly)
        joined = self.mode is not ReassemblyMode.NONE
        self.join_quic = joined if join_quic_initials is None else join_quic_initials
        """QUIC CRYPTO data joined across a flow's Initials (default: in the stream modes)."""
        self.overlap = OverlapPolicy(overlap)
        """How the stream modes settle overlapping segments (reassembly.OverlapPolicy)."""
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
            if isinstance(insp, Inspection):
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
        if not isinstance(insp, Inspection):
            insp = flow.inspection = Inspection()
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

    def _stream(self, insp: Inspection, direction: int) -> TcpStream:
        stream = insp.streams[direction]
        if stream is None:
            stream = insp.streams[direction] = TcpStream(overlap=self.overlap)
        return stream

    def _inspect_tcp(
        self, pkt: Packet, flow: FlowState, insp: Inspection, direction: int
    ) -> Classification | None:
        payload = pkt.payload
        starts: list[int] = _STREAM_START
        if self.mode is ReassemblyMode.NONE:
            data = payload
        else:
            stream = self._stream(insp, direction)
            if not stream.feed(pkt.seq, payload):
                return None  # a retransmission or an out-of-order segment: nothing new in order
            if stream.rewritten:  # the overlap policy replaced bytes: read the stream afresh
                stream.rewritten = False
                insp.tls_done.clear()
            data = bytes(stream.data)
            if not looks_like_tls_record(data):  # TLS at the start is read as the mode says
                starts = stream.segment_starts or _STREAM_START
        # `starts` may grow while read (an HTTP CONNECT tunnel's start, found below); the lists
        # it begins as are shared, so a new one is made when it grows.
        tunnel = insp.tunnel_at[direction]
        if self.mode is not ReassemblyMode.NONE and 0 < tunnel < len(data) and tunnel not in starts:
            starts = [*starts, tunnel]  # the tunnel's bytes, joined from their start
        i = 0
        while i < len(starts):
            start = starts[i]
            i += 1
            # The stream start first; then, in the stream modes, later segment starts: TLS after a
            # plaintext preamble (STARTTLS, a proxy exchange) or behind junk bytes.
            tail = data[start:] if start else data
            if looks_like_tls_record(tail) and (direction, start) not in insp.tls_done:
                verdict = self._tls(flow, insp, tail, direction, start, data)
                if verdict is not None or insp.tls_seen:
                    return verdict
            if looks_like_http_request(tail):
                after = preamble_kind(data[:start]) if start else ""
                verdict = self._http(flow, insp, tail, after, start, direction)
                if verdict is not None or (insp.http_seen and insp.connect is None):
                    return verdict
                inner = insp.tunnel_at[direction]
                if insp.connect is not None and start < inner < len(data) and inner not in starts:
                    starts = [*starts, inner]  # the tunnel's first bytes came with the request
                continue
            status = http_response_status(tail)
            if status is not None:
                if insp.connect is not None and 200 <= status < 300:
                    # The proxy's "200 Connection established": the tunnel's bytes follow it.
                    end = _header_end(tail)
                    if end > 0 and start + end < len(data) and start + end not in starts:
                        insp.tunnel_at[direction] = start + end
                        starts = [*starts, start + end]
                    continue
                host = _authority_host(insp.connect) if insp.connect is not None else None
                return self._decide(flow, Protocol.HTTP, host=host, detail=f"response {status}")
        if ssh.match(payload) is not None:
            return self._decide(flow, Protocol.SSH, detail="ssh banner")
        if 53 in (flow.server_port, flow.client_port) and len(data) > 2:
            # RFC 7766: a 2-byte length, then the message; the stream modes read it joined
            dns_match = dns.match_udp(data[2:], port_53=True)
            if dns_match is not None:
                return self._decide(flow, Protocol.DNS, host=dns_match.qname, detail="dns over tcp")
        vpn = openvpn.match_tcp(payload, flow.from_client)
        if vpn is not None:
            return self._decide(flow, Protocol.OPENVPN, detail=describe("openvpn tcp", vpn))
        if flow.from_client and not insp.client_payload_seen and insp.syn_seen:
            # The rule judges a connection's first data packet; mid-connection pickups are exempt.
            fe = fully_encrypted.match(payload)
            if fe is not None:
                return self._decide(
                    flow, Protocol.FULLY_ENCRYPTED, detail=describe("first client packet", fe)
                )
        return None

    def _tls(
        self,
        flow: FlowState,
        insp: Inspection,
        data: bytes,
        direction: int,
        start: int = 0,
        stream: bytes = b"",
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
                insp.tls_done.add((direction, start))  # these stream bytes will not change
            return None
        except Malformed as err:
            if client_hello_record(data):
                # A handshake record holding a ClientHello that stops parsing midway: the box has
                # seen TLS, only not the SNI (docs/dpi.md: "TLS without SNI").
                return self._decide(flow, Protocol.TLS, detail=f"client hello unreadable: {err}")
            insp.note = f"not a readable TLS record: {err}"
            if self.mode is not ReassemblyMode.NONE:
                insp.tls_done.add((direction, start))
            return None
        ch = scan.client_hello
        detail = "client hello" if scan.records == 1 else f"client hello in {scan.records} records"
        if insp.connect is not None:
            detail += f" after an http connect to {insp.connect}"
        elif start:
            detail += f" after {preamble_kind(stream[:start])}"
        if not flow.from_client:
            detail += " from server side"
        protocol = Protocol.TOR if tor.tls_traits(ch) else Protocol.TLS
        host = _authority_host(insp.connect) if insp.connect is not None else None
        return self._decide_hello(flow, protocol, ch, "t", detail, host=host)

    def _http(
        self,
        flow: FlowState,
        insp: Inspection,
        data: bytes,
        after: str = "",
        start: int = 0,
        direction: int = 0,
    ) -> Classification | None:
        try:
            request = parse_http_request(data)
        except NeedData:
            insp.http_seen = True
            return None
        except Malformed as err:
            insp.note = f"not HTTP: {err}"
            return None
        insp.http_seen = True
        if request.method == "CONNECT":
            # A proxy tunnel (RFC 9110 §9.3.6): what it carries decides, as nDPI reads the TLS
            # inside an HTTP_Connect flow; the TSPU acts on the inner ClientHello (§6: plain
            # HTTP/SOCKS proxies stay under inspection, CP-THR).
            insp.connect = request.path
            end = _header_end(data) if request.headers_complete else 0
            if end > 0:
                insp.tunnel_at[direction] = start + end
            return None
        waiting = request.host is None and not request.headers_complete
        if waiting and self.mode is not ReassemblyMode.NONE:
            return None  # the stream may bring the Host header
        detail = f"{request.method} {request.path[:200]}" + (f" after {after}" if after else "")
        return self._decide(flow, Protocol.HTTP, host=request.host, detail=detail)

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
        transport: str,
        detail: str,
        quic_version: int | None = None,
        host: str | None = None,
    ) -> Classification:
        verdict = Classification(
            protocol=protocol,
            decided_at=flow.packets,
            sni=ch.sni,
            host=host,
            alpn=ch.alpn,
            has_ech=ch.has_ech,
            quic_version=quic_version,
            detail=detail,
            reassembly=self.mode.value,
            hello=HelloPrint(ch),
            transport=transport,
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
        host = None
        if isinstance(insp, Inspection):
            note = insp.note
            if insp.connect is not None:
                host = _authority_host(insp.connect)
                note = note or f"http connect to {insp.connect}"
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
            host=host,
            quic_version=quic_version,
            detail=detail,
            reassembly=self.mode.value,
        )


_STREAM_START = [0]


def _authority_host(authority: str) -> str:
    """The host of a CONNECT request's authority (``host:port``, ``[v6]:port``), as nDPI names
    an HTTP_Connect flow's host."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    host, colon, port = authority.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else authority


def _header_end(data: bytes) -> int:
    """The offset just past an HTTP/1.x header block's blank line (CRLF or bare LF), or 0."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else 0


def _address_text(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
