"""The UDP half of the classifier: DNS, QUIC (Initials, and QUIC without one), DTLS, WireGuard,
OpenVPN. A mixin of ``classify.Classifier``; the order of detectors is in classify.py's docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tspulab.dpi import quic, quic_detect
from tspulab.dpi.classify_types import Classification, Inspection, Protocol
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.fingerprints import dns, dtls, openvpn, wireguard
from tspulab.dpi.flow import FlowState
from tspulab.dpi.packet import Packet
from tspulab.dpi.quic_detect import google_quic_version
from tspulab.dpi.reassembly import ReassemblyMode
from tspulab.dpi.tls import ClientHello


class UdpInspection:
    """The UDP detectors; ``Classifier`` provides ``mode`` and the ``_decide*`` helpers."""

    if TYPE_CHECKING:
        mode: ReassemblyMode
        join_quic: bool

        def _decide(
            self, flow: FlowState, protocol: Protocol, *, host: str | None = None, detail: str = ""
        ) -> Classification: ...

        def _decide_hello(
            self,
            flow: FlowState,
            protocol: Protocol,
            ch: ClientHello,
            transport: str,
            detail: str,
            quic_version: int | None = None,
        ) -> Classification: ...

    def _inspect_udp(self, pkt: Packet, flow: FlowState, insp: Inspection) -> Classification | None:
        payload = pkt.payload
        from_client = flow.from_client
        if 53 in (pkt.sport, pkt.dport):
            dns_match = dns.match_udp(payload, port_53=True)
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
            return self._decide_hello(flow, Protocol.DTLS, ch, "d", "dtls client hello")
        dtls_version = dtls.match_records(payload)
        if dtls_version is not None:
            return self._decide(flow, Protocol.DTLS, detail=f"dtls records {dtls_version:#06x}")
        wg = wireguard.match(payload, from_client)
        if wg is not None:
            return self._decide(flow, Protocol.WIREGUARD, detail=describe("wireguard", wg))
        vpn = openvpn.match_udp(payload, from_client)
        if vpn is not None:
            return self._decide(flow, Protocol.OPENVPN, detail=describe("openvpn udp", vpn))
        if flow.packets_from_server == 0:
            # Only one side seen (asymmetric routing, or the capture missed the client): the first
            # sender may be the server, so a server hard reset from it still names OpenVPN.
            vpn = openvpn.match_udp(payload, False)
            if vpn is not None:
                detail = describe("openvpn udp", vpn) + ", one direction seen"
                return self._decide(flow, Protocol.OPENVPN, detail=detail)
        return self._quic_without_initial(pkt, flow, insp)

    def _quic_without_initial(
        self, pkt: Packet, flow: FlowState, insp: Inspection
    ) -> Classification | None:
        """QUIC flows whose client Initial is not seen: short headers (quic_detect)."""
        payload = pkt.payload
        if quic_detect.is_gquic_rejection(payload, pkt.sport):
            return self._decide(flow, Protocol.QUIC, detail="gquic server rejection")
        if not payload[0] & 0x80 and payload[0] & 0x40 and pkt.dport == 443:
            tracker = insp.quic_short
            if tracker is None:
                tracker = insp.quic_short = quic_detect.ShortHeaderTracker()
            if tracker.feed(payload, pkt.dport):
                return self._decide(flow, Protocol.QUIC, detail="quic short headers, no initial")
        return None

    def _quic(self, pkt: Packet, flow: FlowState, insp: Inspection) -> Classification | None:
        payload = pkt.payload
        try:
            header = quic.parse_long_header(payload)
        except DecodeError:  # a Length that runs past the datagram, CIDs too long, ...
            if flow.from_client and quic_detect.zero_rtt_version(payload) is not None:
                return self._zero_rtt(flow, insp)
            shaped = quic_detect.client_initial_version(payload) if flow.from_client else None
            if shaped is not None:  # the header has a client Initial's shape: nDPI says QUIC
                insp.quic_version = shaped
            return None
        version = header.version
        if version == 0:
            if quic_detect.is_version_negotiation(payload):
                insp.note = "quic version negotiation"
                if insp.quic_version is None:
                    insp.quic_version = 0
            return None  # the client's next Initial (a version the server offered) decides
        family = quic_detect.quic_family(version)
        if family is None:
            return None  # only the version-independent invariants hold: too weak on their own
        if family == "reserved":
            # RFC 9000 §15: a client exercising version negotiation; keys cannot exist for it.
            if flow.from_client and quic_detect.client_initial_version(payload) is not None:
                insp.quic_version = version
                insp.note = f"quic reserved version {version:#010x}, awaiting negotiation"
            return None
        insp.quic_version = version
        if not flow.from_client:
            return None  # server Initials use server keys; the client's side decides
        if not header.supported:
            if quic_detect.client_initial_version(payload) is not None:  # keys unknown
                return self._decide(flow, Protocol.QUIC, detail=f"quic {family} initial")
            if quic_detect.zero_rtt_version(payload) is not None:
                return self._zero_rtt(flow, insp)
            return None
        if not self.join_quic or insp.quic_assembler is None:
            # not joining: the ClientHello must be complete inside this one datagram; the flow's
            # derived Initial keys are kept (same DCID, same keys), the CRYPTO data is not
            insp.quic_assembler = quic.QuicInitialAssembler(keys_from=insp.quic_assembler)
        progress = insp.quic_assembler.feed(payload, header)
        if progress.client_hello is None:
            insp.note = f"quic {progress.outcome}"
            if progress.outcome == "not-initial" and quic_detect.zero_rtt_version(payload):
                return self._zero_rtt(flow, insp)
            return None
        ch = progress.client_hello
        rule = " 2022-rule" if quic.matches_2022_quic_rule(pkt.dport, payload) else ""
        return self._decide_hello(
            flow,
            Protocol.QUIC,
            ch,
            "q",
            f"quic initial{rule}",
            quic_version=progress.version,
        )

    def _zero_rtt(self, flow: FlowState, insp: Inspection) -> Classification | None:
        """0-RTT before the Initial: wait a little for the Initial (nDPI waits 3 packets)."""
        insp.quic_0rtt += 1
        insp.note = "quic 0-rtt before any initial"
        if flow.packets >= 3:
            return self._decide(flow, Protocol.QUIC, detail="quic 0-rtt, no initial")
        return None

    # --- verdicts --------------------------------------------------------------------------


def describe(prefix: str, match: object) -> str:
    """A short detail string from a fingerprint match: its ``kind``/``detail`` if it has one."""
    for name in ("detail", "wrapping", "kind", "variant"):
        value = getattr(match, name, None)
        if isinstance(value, str) and value:
            return f"{prefix} {value}"
    return prefix
