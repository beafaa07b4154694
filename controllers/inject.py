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

from collections.abc import Callable
from typing import TypeVar

from os_ken.lib.packet import ethernet, ipv4, ipv6, packet, tcp, udp

PSH_ACK_FIN = tcp.TCP_PSH | tcp.TCP_ACK | tcp.TCP_FIN


L4 = TypeVar("L4", tcp.tcp, udp.udp)


def _answer(
    frame: bytes,
    layer: type[L4],
    ip_id: int,
    payload: bytes,
    reply: Callable[[packet.Packet, L4], tcp.tcp | udp.udp],
) -> bytes | None:
    """The answer to the client packet `frame` from the host it was sent to: Ethernet and IP
    addresses swapped, TTL 64, IP ID `ip_id` (IPv4), then `reply(pkt, l4)` (the transport
    header, ports swapped) and `payload`; None when `frame` is not IP over Ethernet carrying
    `layer`."""
    pkt = packet.Packet(frame)
    eth = pkt.get_protocol(ethernet.ethernet)
    ip = pkt.get_protocol(ipv4.ipv4) or pkt.get_protocol(ipv6.ipv6)
    l4 = pkt.get_protocol(layer)
    if eth is None or ip is None or l4 is None:
        return None
    proto = 6 if layer is tcp.tcp else 17
    out = packet.Packet()
    out.add_protocol(ethernet.ethernet(dst=eth.src, src=eth.dst, ethertype=eth.ethertype))
    if isinstance(ip, ipv4.ipv4):
        out.add_protocol(
            ipv4.ipv4(src=ip.dst, dst=ip.src, proto=proto, ttl=64, identification=ip_id)
        )
    else:
        out.add_protocol(ipv6.ipv6(src=ip.dst, dst=ip.src, nxt=proto, hop_limit=64))
    out.add_protocol(reply(pkt, l4))
    out.add_protocol(payload)
    out.serialize()
    return bytes(out.data)


def _tcp_reply(pkt: packet.Packet, seg: tcp.tcp) -> tcp.tcp:
    tail = pkt.protocols[-1]
    sent = len(tail) if isinstance(tail, bytes | bytearray) else 0
    return tcp.tcp(
        src_port=seg.dst_port, dst_port=seg.src_port, seq=seg.ack,
        ack=(seg.seq + sent) & 0xFFFFFFFF, bits=PSH_ACK_FIN, window_size=65535,
    )  # fmt: skip


def tcp_answer(frame: bytes, payload: bytes) -> bytes | None:
    """A server→client segment with `payload` and FIN, answering the client segment `frame`."""
    return _answer(frame, tcp.tcp, 1, payload, _tcp_reply)


def udp_answer(frame: bytes, payload: bytes) -> bytes | None:
    """A datagram from the receiver of `frame` back to its sender, carrying `payload`."""
    return _answer(
        frame,
        udp.udp,
        0,
        payload,
        lambda _pkt, d: udp.udp(src_port=d.dst_port, dst_port=d.src_port),
    )
