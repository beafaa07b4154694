"""Craft the TCP RST/ACK segments a TSPU sends, from the packet that triggered them.

Two shapes (tspu-behaviour.md §2.2, §4):
- **rewrite** (SNI-I): the server's reply is replaced by a RST/ACK carrying that reply's own
  addresses, ports, sequence and acknowledgement numbers, IP ID and TTL, so the client takes it as
  the server's. §2.2 describes SNI-I as an in-path rewrite of the server's packet, not an
  injection; no source gives the rewritten packet's IP ID, so the reply's own is kept (what a
  rewrite of that packet leaves in place; issue 15 replaced the passive-DPI IP ID 1 of §4, which
  GDPI reports for ISP filters, not for the TSPU);
- **inject**: a RST/ACK forged in the other direction, toward the sender of the packet seen (or
  toward its receiver), with sequence numbers that the receiver accepts.

Injected packets carry IP ID 0 as the passive ISP DPIs of §4 did (GDPI: 0x0000 or 0x0001), so
a capture can tell them from the real server's.
"""

from __future__ import annotations

from os_ken.lib.packet import ethernet, ipv4, ipv6, packet, tcp

RST_ACK = tcp.TCP_RST | tcp.TCP_ACK


def _payload_len(pkt: packet.Packet, seg: tcp.tcp) -> int:
    tail = pkt.protocols[-1]
    return len(tail) if isinstance(tail, bytes | bytearray) else 0


def _build(
    eth: ethernet.ethernet,
    ip: ipv4.ipv4 | ipv6.ipv6,
    *,
    swap: bool,
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    ip_id: int,
    ttl: int = 64,
) -> bytes:
    out = packet.Packet()
    if swap:
        out.add_protocol(ethernet.ethernet(dst=eth.src, src=eth.dst, ethertype=eth.ethertype))
    else:
        out.add_protocol(ethernet.ethernet(dst=eth.dst, src=eth.src, ethertype=eth.ethertype))
    src, dst = (ip.dst, ip.src) if swap else (ip.src, ip.dst)
    if isinstance(ip, ipv4.ipv4):
        out.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=6, ttl=ttl, identification=ip_id))
    else:
        out.add_protocol(ipv6.ipv6(src=src, dst=dst, nxt=6, hop_limit=ttl))
    out.add_protocol(
        tcp.tcp(src_port=src_port, dst_port=dst_port, seq=seq, ack=ack, bits=RST_ACK, window_size=0)
    )
    out.serialize()
    return bytes(out.data)


def _parse(
    frame: bytes,
) -> tuple[packet.Packet, ethernet.ethernet, ipv4.ipv4 | ipv6.ipv6, tcp.tcp] | None:
    """The frame's Ethernet, IP and TCP headers, or None if it is not TCP over IP."""
    pkt = packet.Packet(frame)
    eth, seg = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(tcp.tcp)
    ip = pkt.get_protocol(ipv4.ipv4) or pkt.get_protocol(ipv6.ipv6)
    if eth is None or seg is None or ip is None:
        return None
    return pkt, eth, ip, seg


def rst_replacing(frame: bytes) -> bytes | None:
    """SNI-I: a RST/ACK in place of `frame` (same direction, same numbers, the frame's own IP ID
    and TTL), or None if not TCP."""
    parsed = _parse(frame)
    if parsed is None:
        return None
    _, eth, ip, seg = parsed
    if isinstance(ip, ipv4.ipv4):
        ip_id, ttl = ip.identification, ip.ttl
    else:
        ip_id, ttl = 0, ip.hop_limit
    return _build(
        eth, ip, swap=False, src_port=seg.src_port, dst_port=seg.dst_port,
        seq=seg.seq, ack=seg.ack, ip_id=ip_id, ttl=ttl,
    )  # fmt: skip


def rst_to_sender(frame: bytes) -> bytes | None:
    """A RST/ACK back to the sender of `frame`, as if from its peer (e.g. to a client after its
    ClientHello): seq = the ack the sender expects, ack = past the sender's payload."""
    parsed = _parse(frame)
    if parsed is None:
        return None
    pkt, eth, ip, seg = parsed
    advance = _payload_len(pkt, seg) + (1 if seg.bits & (tcp.TCP_SYN | tcp.TCP_FIN) else 0)
    return _build(
        eth, ip, swap=True, src_port=seg.dst_port, dst_port=seg.src_port,
        seq=seg.ack, ack=(seg.seq + advance) & 0xFFFFFFFF, ip_id=0,
    )  # fmt: skip


def rst_to_receiver(frame: bytes) -> bytes | None:
    """A RST/ACK to the receiver of `frame`, as if from its sender, sent after it."""
    parsed = _parse(frame)
    if parsed is None:
        return None
    pkt, eth, ip, seg = parsed
    advance = _payload_len(pkt, seg) + (1 if seg.bits & (tcp.TCP_SYN | tcp.TCP_FIN) else 0)
    return _build(
        eth, ip, swap=False, src_port=seg.src_port, dst_port=seg.dst_port,
        seq=(seg.seq + advance) & 0xFFFFFFFF, ack=seg.ack, ip_id=0,
    )  # fmt: skip
