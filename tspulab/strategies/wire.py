"""IPv4 packets the packet strategies send: fakes, fragments, a rewritten SYN/ACK window.

Built and parsed with dpkt; checksums are always computed here (the kernel hands NFQUEUE packets
whose transport checksum may still be the partial one of checksum offload) except where a
strategy asks for a wrong one. Only IPv4: the fixture and the TSPU models are IPv4.

Choices that a censor could key on, stated:
- a fake keeps the real packet's addresses, ports, TCP flags, window and options (timestamps
  included), so only the fooling differs; its IP ID is the real one with the top bit flipped
  (far from the client's next IDs) unless ``ipid=same`` (§5.7, §6: matching non-zero IP IDs on fake
  and real packets *trigger* blocking on googlevideo);
- ``badseq`` moves seq and ack back by 10,000 and 66,000 (outside any window the server
  accepts), ``md5`` adds a TCP MD5 option (RFC 2385) that a server without a key drops;
- fragments carry the real packet's IP ID, TTL and DF cleared; the cut is in bytes of the IP
  payload (multiple of 8, RFC 791); ``overlap`` makes the second fragment start that many bytes
  early, repeating the first fragment's bytes.
"""

from __future__ import annotations

import os
import struct

import dpkt

BADSEQ_SEQ = 10_000
BADSEQ_ACK = 66_000


def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    """TCP/UDP checksum over the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768); ``segment`` has
    its checksum field zeroed."""
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, proto, len(segment))
    value = inet_checksum(pseudo + segment)
    return value if value or proto != 17 else 0xFFFF


def parse(raw: bytes) -> dpkt.ip.IP:
    ip = dpkt.ip.IP(raw)
    if ip.v != 4:
        raise ValueError("only IPv4 is rewritten")
    return ip


def build(ip: dpkt.ip.IP, *, bad_l4_checksum: bool = False) -> bytes:
    """Serialise with lengths and both checksums computed (the transport one spoilt if asked)."""
    l4 = ip.data
    if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        if isinstance(l4, dpkt.udp.UDP):
            l4.ulen = len(l4)
        l4.sum = 0
        good = l4_checksum(ip.src, ip.dst, ip.p, bytes(l4))
        l4.sum = good ^ 0x5A5A if bad_l4_checksum else good
    ip.len = len(ip)
    ip.sum = 0
    header = ip.pack_hdr() + bytes(ip.opts)
    ip.sum = inet_checksum(header)
    return bytes(ip.pack_hdr()) + bytes(ip.opts) + bytes(ip.data)


def with_checksums(raw: bytes) -> bytes:
    """The same packet with correct checksums (not for fragments)."""
    return build(parse(raw))


def md5_option(digest: bytes | None = None) -> bytes:
    """TCP MD5 signature option (kind 19, length 18) and two NOPs to a 4-byte boundary."""
    digest = digest if digest is not None else os.urandom(16)
    return bytes([19, 18]) + digest + b"\x01\x01"


def fake_of(
    real: bytes,
    payload: bytes,
    *,
    ttl: int | None = None,
    badsum: bool = False,
    badseq: bool = False,
    md5: bool = False,
    same_ipid: bool = False,
) -> bytes:
    """A fake of the real TCP or UDP packet ``real`` carrying ``payload``."""
    ip = parse(real)
    ip.id = ip.id if same_ipid else ip.id ^ 0x8000
    if ttl is not None:
        ip.ttl = ttl
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        l4.data = payload
        if badseq:
            l4.seq = (l4.seq - BADSEQ_SEQ) & 0xFFFFFFFF
            l4.ack = (l4.ack - BADSEQ_ACK) & 0xFFFFFFFF
        if md5:
            l4.opts = bytes(l4.opts) + md5_option()
            if len(l4.opts) > 40:
                raise ValueError("no room for an MD5 option in the TCP header")
            l4.off = (20 + len(l4.opts)) // 4
    elif isinstance(l4, dpkt.udp.UDP):
        l4.data = payload
    else:
        raise ValueError(f"IP protocol {ip.p} is not TCP or UDP")
    return build(ip, bad_l4_checksum=badsum)


def fragments(real: bytes, at: int, *, order: str = "forward", overlap: int = 0) -> list[bytes]:
    """Two IPv4 fragments of ``real`` (checksums made correct first), cut ``at`` bytes into the
    IP payload, in the given sending order."""
    if at <= 0 or at % 8:
        raise ValueError(f"fragment cut {at} must be a positive multiple of 8")
    if overlap % 8 or overlap >= at:
        raise ValueError(f"overlap {overlap} must be a multiple of 8 below the cut {at}")
    ip = parse(with_checksums(real))
    body = bytes(ip.data)
    if at >= len(body):
        raise ValueError(f"fragment cut {at} is not inside the {len(body)}-byte IP payload")
    pieces = [(0, body[:at], True), (at - overlap, body[at - overlap :], False)]
    out = []
    for offset, data, more in pieces:
        frag = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=ip.p, ttl=ip.ttl, id=ip.id, tos=ip.tos)
        frag.data = data
        frag.df, frag.mf, frag.offset = 0, int(more), offset // 8  # the field counts 8-byte units
        out.append(build(frag))
    return out if order == "forward" else out[::-1]
