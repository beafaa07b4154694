"""Test-only builders of ClientHellos, TLS records and TCP/UDP frames (scapy, GPL: tests only)."""

from __future__ import annotations

import itertools

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_Padding,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedGroups,
    TLS_Ext_SupportedVersion_CH,
    TLS_Ext_Unknown,
)
from scapy.layers.tls.handshake import TLSClientHello
from scapy.packet import Packet as ScapyPacket

from tspulab.dpi.packet import Packet, decode

CLIENT = "10.0.0.2"
SERVER = "93.184.216.34"
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
"""Explicit MACs: without them scapy resolves the destination (an ARP lookup) to fill them in."""


def client_hello(
    sni: str | None = "example.com",
    padding: int = 0,
    extra: list[ScapyPacket] | None = None,
    alpn: tuple[str, ...] = ("h2", "http/1.1"),
) -> bytes:
    """One ClientHello handshake message (type, 3-byte length, body)."""
    ext: list[ScapyPacket] = []
    if sni is not None:
        ext.append(TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())]))
    if alpn:
        ext.append(TLS_Ext_ALPN(protocols=[ProtocolName(protocol=p.encode()) for p in alpn]))
    ext += [
        TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303]),
        TLS_Ext_SupportedGroups(groups=[0x001D, 0x0017]),
    ]
    ext += extra or []
    if padding:
        ext.append(TLS_Ext_Padding(padding=b"\x00" * padding))
    hello = TLSClientHello(
        version=0x0303, gmt_unix_time=0, random_bytes=b"\x11" * 28, sid=b"",
        ciphers=[0x1301, 0x1302, 0xC02B], comp=[0], ext=ext,
    )  # fmt: skip
    return bytes(hello)


def unknown_extension(ext_type: int, value: bytes) -> ScapyPacket:
    return TLS_Ext_Unknown(type=ext_type, val=value)


def record(content_type: int, body: bytes, version: int = 0x0301) -> bytes:
    return bytes([content_type, version >> 8, version & 0xFF]) + len(body).to_bytes(2, "big") + body


def handshake_records(message: bytes, fragment: int) -> bytes:
    """``message`` cut into handshake records of at most ``fragment`` bytes each."""
    return b"".join(record(22, message[i : i + fragment]) for i in range(0, len(message), fragment))


CCS = record(20, b"\x01")


def tcp_frame(
    payload: bytes,
    seq: int,
    flags: str = "PA",
    from_client: bool = True,
    sport: int = 40000,
    dport: int = 443,
) -> bytes:
    src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
    sp, dp = (sport, dport) if from_client else (dport, sport)
    return bytes(
        Ether(**MACS)
        / IP(src=src, dst=dst)
        / TCP(sport=sp, dport=dp, seq=seq, flags=flags)
        / payload
    )


def udp_frame(payload: bytes, sport: int = 40000, dport: int = 443, v6: bool = False) -> bytes:
    ip = IPv6(src="2001:db8::2", dst="2001:db8::1") if v6 else IP(src=CLIENT, dst=SERVER)
    return bytes(Ether(**MACS) / ip / UDP(sport=sport, dport=dport) / payload)


def segments(stream: bytes, cuts: list[int], isn: int = 1000) -> list[Packet]:
    """A client handshake (SYN) then ``stream`` cut at the given offsets, as decoded packets."""
    packets = [decode(tcp_frame(b"", isn, "S"))]
    bounds = [0, *cuts, len(stream)]
    for start, end in itertools.pairwise(bounds):
        packets.append(decode(tcp_frame(stream[start:end], isn + 1 + start)))
    return packets
