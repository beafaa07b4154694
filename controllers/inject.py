"""Craft the answers an ISP filter injects toward a client, from the client's own packet.

- `tcp_answer`: a server→client TCP segment carrying `payload` (an HTTP 302 or a block page)
  with FIN set, in the server's place: seq = what the client acknowledges, ack = past the
  client's request; the client reads it before the real server's reply, which then arrives
  as a duplicate;
- `udp_answer`: a UDP datagram from the queried server's address and port back to the client
  (the tampered DNS answer).

Injected packets carry IP ID 0 or 1 as passive ISP DPIs' did (tspu-behaviour.md §4, GDPI), so a
capture tells them from the server's; TTL 64.
"""

from __future__ import annotations

from os_ken.lib.packet import ethernet, ipv4, ipv6, packet, tcp, udp

PSH_ACK_FIN = tcp.TCP_PSH | tcp.TCP_ACK | tcp.TCP_FIN


def _headers(
    frame: bytes,
) -> tuple[packet.Packet, ethernet.ethernet, ipv4.ipv4 | ipv6.ipv6] | None:
    pkt = packet.Packet(frame)
    eth = pkt.get_protocol(ethernet.ethernet)
    ip = pkt.get_protocol(ipv4.ipv4) or pkt.get_protocol(ipv6.ipv6)
    if eth is None or ip is None:
        return None
    return pkt, eth, ip


def _reply_frame(
    eth: ethernet.ethernet, ip: ipv4.ipv4 | ipv6.ipv6, proto: int, ip_id: int
) -> packet.Packet:
    out = packet.Packet()
    out.add_protocol(ethernet.ethernet(dst=eth.src, src=eth.dst, ethertype=eth.ethertype))
    if isinstance(ip, ipv4.ipv4):
        out.add_protocol(
            ipv4.ipv4(src=ip.dst, dst=ip.src, proto=proto, ttl=64, identification=ip_id)
        )
    else:
        out.add_protocol(ipv6.ipv6(src=ip.dst, dst=ip.src, nxt=proto, hop_limit=64))
    return out


def tcp_answer(frame: bytes, payload: bytes) -> bytes | None:
    """A server→client segment with `payload` and FIN, answering the client segment `frame`."""
    parsed = _headers(frame)
    if parsed is None:
        return None
    pkt, eth, ip = parsed
    seg = pkt.get_protocol(tcp.tcp)
    if seg is None:
        return None
    tail = pkt.protocols[-1]
    sent = len(tail) if isinstance(tail, bytes | bytearray) else 0
    out = _reply_frame(eth, ip, 6, ip_id=1)
    out.add_protocol(
        tcp.tcp(
            src_port=seg.dst_port, dst_port=seg.src_port, seq=seg.ack,
            ack=(seg.seq + sent) & 0xFFFFFFFF, bits=PSH_ACK_FIN, window_size=65535,
        )
    )  # fmt: skip
    out.add_protocol(payload)
    out.serialize()
    return bytes(out.data)


def udp_answer(frame: bytes, payload: bytes) -> bytes | None:
    """A datagram from the receiver of `frame` back to its sender, carrying `payload`."""
    parsed = _headers(frame)
    if parsed is None:
        return None
    pkt, eth, ip = parsed
    dgram = pkt.get_protocol(udp.udp)
    if dgram is None:
        return None
    out = _reply_frame(eth, ip, 17, ip_id=0)
    out.add_protocol(udp.udp(src_port=dgram.dst_port, dst_port=dgram.src_port))
    out.add_protocol(payload)
    out.serialize()
    return bytes(out.data)
