"""The server-side strategies, pure: a small SYN/ACK window (brdgrd) and the TCP split handshake.

``ServerSide.outgoing(raw)`` sees the server's packets, ``incoming(raw)`` the client's; both return
a ``Rewrite`` (desync.py). rewriter.py runs them on NFQUEUEs in the server's namespace.

Split handshake (CP-TSPU §2.3: a SYN from the remote side un-blocks a flow), as a simultaneous
open (RFC 9293 §3.5, figure 8) that the server's kernel does not know about:

    client                 server NFQUEUE                 server kernel
    SYN c        ───────────────────────────────────────►  (listen)
                 ◄── SYN s (the SYN/ACK with ACK cleared) ◄ SYN/ACK s, c+1   (dropped)
    SYN/ACK c,s+1 ────► ACK c+1,s+1 (rewritten) ─────────►  ESTABLISHED
                 ◄── ACK s+1,c+1 (injected)
    ESTABLISHED

The client's kernel sees a crossed SYN and answers with a SYN/ACK; the rewriter turns that into
the ACK the server's kernel waits for and acknowledges the client's SYN itself. TCP options of
the injected ACK: the server's timestamp, echoing the client's (RFC 7323 §3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import dpkt

from tspulab.strategies import wire
from tspulab.strategies.desync import PASS, Rewrite
from tspulab.strategies.spec import Step

SYN = dpkt.tcp.TH_SYN
ACK = dpkt.tcp.TH_ACK


def _timestamps(opts: bytes) -> tuple[int, int] | None:
    for kind, value in dpkt.tcp.parse_opts(opts):
        if kind == dpkt.tcp.TCP_OPT_TIMESTAMP and len(value) == 8:
            tsval, tsecr = struct.unpack("!II", value)
            return tsval, tsecr
    return None


def _only_timestamps(tsval: int, tsecr: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)


@dataclass
class ServerSide:
    steps: list[Step]
    window: int | None = None
    split_handshake: bool = False
    pending: dict[tuple[bytes, int], tuple[int, int, int | None]] = field(default_factory=dict)
    """client (addr, port) -> (server ISN, client ISN, server TSval) of a split handshake."""

    def __post_init__(self) -> None:
        for step in self.steps:
            if step.name == "srvwin":
                self.window = step.num("size")
            elif step.name == "split-handshake":
                self.split_handshake = True

    def outgoing(self, raw: bytes) -> Rewrite:
        ip = wire.parse(raw)
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP) or tcp.flags & (SYN | ACK) != SYN | ACK:
            return PASS
        if self.split_handshake:
            ts = _timestamps(bytes(tcp.opts))
            self.pending[(ip.dst, tcp.dport)] = (tcp.seq, tcp.ack - 1, ts[0] if ts else None)
            tcp.flags = SYN
            tcp.ack = 0
            if self.window is not None:
                tcp.win = self.window
            if ts is not None:  # a SYN has no echo to give (RFC 7323 §3.2)
                tcp.opts = _replace_tsecr(bytes(tcp.opts), 0)
            return Rewrite((), (wire.build(ip),), "SYN/ACK sent as a SYN")
        if self.window is not None:
            tcp.win = self.window
            return Rewrite((), (wire.build(ip),), f"SYN/ACK window {self.window}")
        return PASS

    def incoming(self, raw: bytes) -> Rewrite:
        if not self.split_handshake:
            return PASS
        ip = wire.parse(raw)
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP) or tcp.flags & (SYN | ACK) != SYN | ACK:
            return PASS
        state = self.pending.pop((ip.src, tcp.sport), None)
        if state is None:
            return PASS
        server_isn, client_isn, server_tsval = state
        if tcp.seq != client_isn or tcp.ack != (server_isn + 1) & 0xFFFFFFFF:
            return PASS
        client_ts = _timestamps(bytes(tcp.opts))
        # What the server's kernel waits for: the ACK of its SYN/ACK.
        to_server = wire.parse(raw)
        t = to_server.data
        t.flags = ACK
        t.seq = (client_isn + 1) & 0xFFFFFFFF
        t.opts = _only_timestamps(*client_ts) if client_ts else b""
        t.off = (20 + len(t.opts)) // 4
        # What the client's kernel waits for in SYN-RECEIVED: the ACK of its SYN.
        to_client = dpkt.ip.IP(src=ip.dst, dst=ip.src, p=6, ttl=64, id=ip.id ^ 0x5555)
        opts = (
            _only_timestamps(server_tsval, client_ts[0])
            if client_ts and server_tsval is not None else b""
        )  # fmt: skip
        to_client.data = dpkt.tcp.TCP(
            sport=tcp.dport, dport=tcp.sport, seq=(server_isn + 1) & 0xFFFFFFFF,
            ack=(client_isn + 1) & 0xFFFFFFFF, flags=ACK, win=tcp.win, opts=opts,
            off=(20 + len(opts)) // 4,
        )  # fmt: skip
        return Rewrite(
            (wire.build(to_client),), (wire.build(to_server),), "client SYN/ACK -> ACK, ACK sent"
        )


def _replace_tsecr(opts: bytes, tsecr: int) -> bytes:
    out = bytearray(opts)
    i = 0
    while i < len(out):
        kind = out[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        length = out[i + 1] if i + 1 < len(out) else 0
        if length < 2:
            break
        if kind == 8 and length == 10:
            struct.pack_into("!I", out, i + 6, tsecr)
        i += length
    return bytes(out)
