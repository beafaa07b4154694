"""The ISP's own older filter beside the TSPU: what it decides about a packet, what it answers.

Russian ISPs enforced the registry with their own commercial DPIs before the TSPU, and still run
them beside it, so two DPIs may act on one flow (tspu-behaviour.md §1, CP-TSPU). What such a
filter did is in §4 and §2.1, and this is what is modelled:

- **HTTP Host** (§2.1: plaintext HTTP blocking was done by ISP filters, not the TSPU; §4, GDPI
  "Passive DPI"): the first client→server segment with payload on an HTTP port that parses as a
  request whose Host is on the filter's list gets an injected answer, faster than the server's:
  an HTTP 302 to the ISP's block page (`http: redirect`) or the block page itself (`page`).
- **HTTPS** (§4, GDPI): a ClientHello whose SNI is on the list gets an injected TCP RST/ACK
  (`https: reset`). The injected packets carry IP ID 0 or 1, as GDPI describes.
- **DNS** (§4, OONI-22 "DNS manipulation, sometimes pointing to blockpages"): a UDP query for a
  listed name is answered in the ISP resolver's place with the block page's address
  (`dns: blockpage`) or NXDOMAIN (`dns: nxdomain`).
- **Its own coverage** (§2.1: the filters at Rostelecom and OBIT blocked 1,302 and 3,943 of the
  9,655 registry domains the TSPU blocked; they never block out-of-registry names): the filter
  carries its own domain list, a lagging or partial copy of the registry, set by the runner.
- **Passive or inline** (`mode`): a passive filter (§4, GDPI; §9 statement 24) injects and lets
  the original packet go on, so a client that ignores the injection still gets through; an inline
  one drops the packet it answered.
- **No reassembly**: only the first payload-carrying client segment of a TCP flow is read (a Host
  or SNI split across segments passes, as GoodbyeDPI's splitting defeats passive DPIs, §4/GDPI);
  the rest of the flow is not inspected.

Pure: no switch, no clock. `OldFilterPolicy.judge` returns an `Action`; the controller box
(`controllers/oldfilter_box.py`) turns it into packet-outs and flow rules.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Literal

from tspulab.dpi.errors import DecodeError
from tspulab.dpi.http import looks_like_http_request, parse_http_request
from tspulab.dpi.packet import PROTO_TCP, PROTO_UDP, TCP_RST, TCP_SYN, Packet
from tspulab.dpi.registry import Registry
from tspulab.dpi.tls import parse_client_hello_message, parse_record_header

HttpMode = Literal["redirect", "page", "off"]
HttpsMode = Literal["reset", "off"]
DnsMode = Literal["blockpage", "nxdomain", "off"]
FilterMode = Literal["passive", "inline"]

#: the path of the block page the redirect points to; probes recognise it (tspulab.lab.services)
BLOCKPAGE_PATH = "/blocked"
#: text in the block page's body, so a probe that lands on it knows where it is
BLOCKPAGE_MARKER = "tspulab blockpage"
DNS_PORT = 53
TLS_PORT = 443
#: TTL of a tampered DNS answer (short: the ISP's resolver changes its mind with the registry)
DNS_ANSWER_TTL = 60
_DNS_HEADER = struct.Struct("!HHHHHH")
_QTYPE_A = 1
_QCLASS_IN = 1
_RCODE_NXDOMAIN = 3


@dataclass(frozen=True)
class FilterSettings:
    """How one ISP's filter behaves (the scenario's `isps[].old_filter`, docs/scenario.md)."""

    blockpage: str
    """Address of the ISP's block page host (IPv4)."""
    isp: str = "isp"
    http: HttpMode = "redirect"
    https: HttpsMode = "reset"
    dns: DnsMode = "blockpage"
    mode: FilterMode = "passive"
    http_ports: tuple[int, ...] = (80,)


@dataclass(frozen=True)
class Pass:
    """Nothing to do with this packet; `done`: the flow needs no more inspection."""

    done: bool = False


@dataclass(frozen=True)
class HttpBlock:
    """Inject `response` (an HTTP 302 or a page) to the client, then end the connection."""

    host: str
    response: bytes
    kind: Literal["http-redirect", "http-page"]


@dataclass(frozen=True)
class TlsReset:
    """Inject a RST/ACK to the client after its ClientHello."""

    sni: str


@dataclass(frozen=True)
class DnsTamper:
    """Answer the query in the resolver's place with `response` (a whole DNS message)."""

    qname: str
    response: bytes
    answer: str
    """The block page's address, or "NXDOMAIN"."""


Action = Pass | HttpBlock | TlsReset | DnsTamper


def keep_share(name: str, share: float) -> bool:
    """Whether a filter that carries `share` of the registry's names carries `name`: the same
    answer for a name every time (a hash of it), so a partial copy is stable over updates."""
    if share >= 1:
        return True
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest) < share * 2**64


def partial_copy(registry: Registry, share: float) -> Registry:
    """The domain rules of `registry` a filter with narrower coverage carries (§2.1); address
    entries are left out: the filter acts on names (HTTP Host, SNI, DNS), the TSPU on addresses."""
    out = Registry()
    for rule in registry.domain_rules():
        if keep_share(rule.name, share):
            out.add_domain(rule.pattern, rule.kind, source=rule.source)
    return out


def http_redirect(blockpage: str, host: str) -> bytes:
    """The injected 302: to the ISP's block page, naming the blocked host, closing the
    connection (ISP blockpage redirects looked like this: GDPI's "Passive DPI")."""
    location = f"http://{blockpage}{BLOCKPAGE_PATH}?host={host}"
    return (
        "HTTP/1.1 302 Found\r\n"
        f"Location: {location}\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii", errors="replace")


def http_page(isp: str, host: str) -> bytes:
    """The injected block page itself (an HTTP 200 in the server's place)."""
    body = f"{BLOCKPAGE_MARKER} {isp}: access to {host} is restricted\n".encode(errors="replace")
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return head + body


def parse_dns_query(payload: bytes) -> tuple[int, str, int, int] | None:
    """(id, lowercased name, qtype, end of the question) of a standard one-question DNS query
    (RFC 1035 §4.1), or None."""
    if len(payload) < _DNS_HEADER.size:
        return None
    qid, flags, qdcount, _, _, _ = _DNS_HEADER.unpack_from(payload)
    if flags & 0x8000 or (flags >> 11) & 0xF != 0 or qdcount != 1:
        return None  # a response, not a QUERY opcode, or not one question
    labels: list[str] = []
    pos = _DNS_HEADER.size
    while True:
        if pos >= len(payload):
            return None
        length = payload[pos]
        pos += 1
        if length == 0:
            break
        if length > 63 or pos + length > len(payload):
            return None  # a compression pointer in a question, or a label past the end
        labels.append(payload[pos : pos + length].decode("latin-1").lower())
        pos += length
    if pos + 4 > len(payload):
        return None
    qtype = int.from_bytes(payload[pos : pos + 2])
    return qid, ".".join(labels), qtype, pos + 4


def dns_answer(query: bytes, question_end: int, address: str | None) -> bytes:
    """A response to `query`: its question, and one A record for `address` (only when the
    question asks for A), or NXDOMAIN when `address` is None. Flags: a recursive resolver's
    answer (QR, RD copied, RA)."""
    qid, flags = struct.unpack_from("!HH", query)
    rd = flags & 0x0100
    qtype = int.from_bytes(query[question_end - 4 : question_end - 2])
    rcode = _RCODE_NXDOMAIN if address is None else 0
    answers = b""
    if address is not None and qtype == _QTYPE_A:
        answers = (
            struct.pack("!HHHIH", 0xC00C, _QTYPE_A, _QCLASS_IN, DNS_ANSWER_TTL, 4)
            + ipaddress.IPv4Address(address).packed
        )
    header = _DNS_HEADER.pack(qid, 0x8000 | rd | 0x0080 | rcode, 1, 1 if answers else 0, 0, 0)
    return header + query[_DNS_HEADER.size : question_end] + answers


def tls_sni(payload: bytes) -> str | None:
    """The SNI of a ClientHello that lies whole in this one segment, else None (no reassembly)."""
    try:
        record = parse_record_header(payload)
        if record.content_type != 22 or len(payload) < 5 + record.length:
            return None
        return parse_client_hello_message(payload[5 : 5 + record.length]).sni
    except DecodeError:
        return None


@dataclass
class OldFilterPolicy:
    """One ISP filter's decisions: its settings and its own list (replaced on each update)."""

    settings: FilterSettings
    registry: Registry = field(default_factory=Registry)

    def listed(self, name: str) -> bool:
        return self.registry.match_domain(name) is not None

    def judge(self, pkt: Packet, from_subscriber: bool) -> Action:
        """The filter's decision about one packet it was sent (client→server TCP to an HTTP or
        TLS port, or a UDP DNS query)."""
        if not from_subscriber:
            return Pass(done=True)
        s = self.settings
        if pkt.proto == PROTO_UDP and pkt.dport == DNS_PORT:
            return self._dns(pkt.payload)
        if pkt.proto != PROTO_TCP:
            return Pass(done=True)
        if pkt.tcp_flags & (TCP_SYN | TCP_RST) or not pkt.payload:
            return Pass()  # the handshake, or a bare ACK: the request is still to come
        if pkt.dport in s.http_ports:
            return self._http(pkt.payload)
        if pkt.dport == TLS_PORT and s.https == "reset":
            sni = tls_sni(pkt.payload)
            if sni is not None and self.listed(sni):
                return TlsReset(sni)
        return Pass(done=True)

    def _http(self, payload: bytes) -> Action:
        s = self.settings
        if s.http == "off" or not looks_like_http_request(payload):
            return Pass(done=True)
        try:
            request = parse_http_request(payload)
        except DecodeError:
            return Pass(done=True)
        if request.host is None:
            return Pass(done=True)
        host = _strip_port(request.host)
        if not self.listed(host):
            return Pass(done=True)
        if s.http == "redirect":
            return HttpBlock(host, http_redirect(s.blockpage, host), "http-redirect")
        return HttpBlock(host, http_page(s.isp, host), "http-page")

    def _dns(self, payload: bytes) -> Action:
        s = self.settings
        query = parse_dns_query(payload)
        if s.dns == "off" or query is None:
            return Pass(done=True)
        _, qname, _, end = query
        if not qname or not self.listed(qname):
            return Pass(done=True)
        address = s.blockpage if s.dns == "blockpage" else None
        return DnsTamper(qname, dns_answer(payload, end, address), address or "NXDOMAIN")


def _strip_port(host: str) -> str:
    """`example.org:8080` → `example.org`; `[2001:db8::1]:80` → `2001:db8::1`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host
