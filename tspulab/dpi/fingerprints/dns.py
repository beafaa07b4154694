"""DNS over UDP, recognised from one message: a sane header and a question that parses.

Header (RFC 1035 §4.1.1): id, flags (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode), then the
question / answer / authority / additional counts. Checked on ONE payload:

- exactly one question (every real resolver sends one; RFC 9619 makes it the rule);
- opcode QUERY (0), NOTIFY (4) or UPDATE (5); the reserved Z bit is 0;
- a query (QR=0, opcode QUERY) carries no answer or authority records and at most one additional
  record, which must be the EDNS OPT pseudo-record (RFC 6891: root owner, type 41); nothing may
  follow it;
- a response has at most 256 records in each section (answers are not walked);
- the question name: labels of 1..63 printable bytes, at most 255 bytes in all, no compression
  pointer (nothing precedes it to point at), then QTYPE != 0 and QCLASS IN/CH/HS/NONE/ANY
  (the top bit, mDNS's "unicast response", is ignored).

``match_udp(payload, port_53=True)`` is the reading for a datagram to or from port 53, where the
port already says "DNS" and a resolver parses leniently (as nDPI does): any opcode (IQUERY,
STATUS, DSO, unassigned ones), the Z bit, 1-16 questions, and name labels of any bytes (binary
labels, control characters, spaces: RFC 2181 §11 allows any octet) are accepted; the name is
given in presentation form, non-printable bytes as ``\\DDD`` (RFC 4343 §2.1).

Random data passes the header alone with probability below 2^-16 (QDCOUNT) x 2^-24 (counts);
the name and class checks cut that further, measured in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

_OPCODES = (0, 4, 5)
_CLASSES = (1, 3, 4, 254, 255)
_TYPE_OPT = 41
_MAX_SECTION = 256
_MAX_QUESTIONS_ON_53 = 16  # nDPI's NDPI_MAX_DNS_REQUESTS


@dataclass(frozen=True, slots=True)
class DNSMatch:
    message_id: int
    is_response: bool
    opcode: int
    rcode: int
    qname: str
    """Dotted, as sent (not lowercased); "." for the root."""
    qtype: int
    qclass: int
    counts: tuple[int, int, int, int]
    """QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT."""


_PRINTABLE = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}


def _presentation(label: bytes) -> str:
    """A label in presentation form: printable bytes as is, others as \\DDD (RFC 4343 §2.1)."""
    return "".join(chr(b) if b in _PRINTABLE else f"\\{b:03d}" for b in label)


def _pull_qname(payload: bytes, pos: int, any_bytes: bool = False) -> tuple[str, int] | None:
    labels: list[str] = []
    total = 0
    while True:
        if pos >= len(payload):
            return None
        length = payload[pos]
        pos += 1
        if length == 0:
            return (".".join(labels) or "."), pos
        if length > 63:  # 0xc0 is a compression pointer, 0x40/0x80 are reserved label types
            return None
        label = payload[pos : pos + length]
        total += length + 1
        if len(label) < length or total > 255:
            return None
        if any(b < 0x21 or b > 0x7E for b in label):
            if not any_bytes:
                return None
            labels.append(_presentation(label))
        else:
            labels.append(label.decode("ascii"))
        pos += length


def match_udp(payload: bytes, port_53: bool = False) -> DNSMatch | None:
    """A plausible DNS query or response, or None. Never raises. ``port_53``: the lenient
    reading for traffic on the DNS port (see the module docstring)."""
    if len(payload) < 17:
        return None
    flags = int.from_bytes(payload[2:4], "big")
    counts = tuple(int.from_bytes(payload[i : i + 2], "big") for i in range(4, 12, 2))
    qd, an, ns, ar = counts
    is_response, opcode, rcode = bool(flags & 0x8000), (flags >> 11) & 0x0F, flags & 0x0F
    if port_53:
        if not 1 <= qd <= _MAX_QUESTIONS_ON_53 or max(an, ns, ar) > _MAX_SECTION:
            return None
        parsed = _pull_qname(payload, 12, any_bytes=True)
        if parsed is None or parsed[1] + 4 > len(payload):
            return None
        qname, pos = parsed
        qtype = int.from_bytes(payload[pos : pos + 2], "big")
        qclass = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        return DNSMatch(
            int.from_bytes(payload[:2], "big"), is_response, opcode, rcode, qname, qtype,
            qclass, (qd, an, ns, ar),
        )  # fmt: skip
    if qd != 1 or opcode not in _OPCODES or flags & 0x0040:
        return None
    query = not is_response and opcode == 0
    if query and (an or ns or ar > 1):
        return None
    if max(an, ns, ar) > _MAX_SECTION:
        return None
    parsed = _pull_qname(payload, 12)
    if parsed is None or parsed[1] + 4 > len(payload):
        return None
    qname, pos = parsed
    qtype = int.from_bytes(payload[pos : pos + 2], "big")
    qclass = int.from_bytes(payload[pos + 2 : pos + 4], "big")
    pos += 4
    if qtype == 0 or qclass & 0x7FFF not in _CLASSES:
        return None
    if query:
        rest = payload[pos:]
        if ar == 0 and rest:
            return None
        # EDNS OPT: root name (0), TYPE 41, CLASS, TTL, RDLEN, RDATA filling the rest.
        opt_ok = len(rest) >= 11 and rest[0] == 0 and int.from_bytes(rest[1:3], "big") == _TYPE_OPT
        if ar == 1 and not opt_ok:
            return None
        if ar == 1 and int.from_bytes(rest[9:11], "big") != len(rest) - 11:
            return None
    return DNSMatch(
        int.from_bytes(payload[:2], "big"),
        is_response,
        opcode,
        rcode,
        qname,
        qtype,
        qclass,
        (qd, an, ns, ar),
    )
