"""Reading the nDPI reference captures with dpkt (shared by the fingerprint and QUIC tests)."""

from __future__ import annotations

import glob
import ipaddress
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt

from tests.datapaths import PCAPS, TOR_RELAYS

RELAYS = TOR_RELAYS


# --- reading captures with dpkt -------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    udp: bool
    flow: tuple[str, int, str, int]
    """(initiator, port, responder, port): the initiator is whoever sent the flow's first packet."""
    from_client: bool
    saw_syn: bool
    """TCP: the capture holds the initiator's SYN, so this flow is seen from its start."""
    payload: bytes


def ip_packets(path: Path) -> Iterator[dpkt.ip.IP | dpkt.ip6.IP6]:
    """The IP packets of a pcap or pcapng capture, via dpkt (linktypes 0, 1, 101, 113): an
    independent reader, so tests do not check tspulab's decoder with itself."""
    with path.open("rb") as fh:
        reader: dpkt.pcap.Reader | dpkt.pcapng.Reader
        try:
            reader = dpkt.pcap.Reader(fh)
        except ValueError:
            fh.seek(0)
            reader = dpkt.pcapng.Reader(fh)
        linktype = reader.datalink()
        for _, frame in reader:
            if linktype == dpkt.pcap.DLT_NULL:
                ip = dpkt.loopback.Loopback(frame).data
            elif linktype == 101:  # raw IP
                ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
            elif linktype == 113:  # Linux cooked
                ip = dpkt.sll.SLL(frame).data
            else:
                ip = dpkt.ethernet.Ethernet(frame).data
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                yield ip


def segments(name: str) -> Iterator[Segment]:
    syn: set[tuple[str, int, str, int]] = set()
    for ip in ip_packets(PCAPS / name):
        l4 = ip.data
        if not isinstance(l4, dpkt.udp.UDP | dpkt.tcp.TCP):
            continue
        src, dst = str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst))
        key, rev = (src, l4.sport, dst, l4.dport), (dst, l4.dport, src, l4.sport)
        udp = isinstance(l4, dpkt.udp.UDP)
        flow = rev if (udp, rev) in _seen else key
        _seen.add((udp, flow))
        if not udp and l4.flags & dpkt.tcp.TH_SYN and not l4.flags & dpkt.tcp.TH_ACK:
            syn.add(key)
        if l4.data:
            yield Segment(udp, flow, flow == key, flow in syn, bytes(l4.data))
    _seen.clear()


_seen: set[tuple[bool, tuple[str, int, str, int]]] = set()


def first_client_payloads(name: str, udp: bool) -> Iterator[tuple[Segment, bytes]]:
    """Per flow, the initiator's first payload (TCP: only flows whose SYN is in the capture)."""
    done: set[tuple[str, int, str, int]] = set()
    for seg in segments(name):
        if seg.udp != udp or not seg.from_client or seg.flow in done:
            continue
        done.add(seg.flow)
        if udp or seg.saw_syn:
            yield seg, seg.payload


ALL_CAPTURES = sorted(os.path.basename(p) for p in glob.glob(str(PCAPS / "*")))


def random_payloads(seed: int, count: int, sizes: range, first: int | None = None) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(rng.randbytes(rng.choice(sizes)))
        if first is not None and data:
            data[0] = first
        out.append(bytes(data))
    return out
