"""The replay loop's shortcut for packets of flows that are already decided.

The reference path is the one a controller runs for every packet: ``packet.decode`` ->
``FlowTable.lookup`` -> ``Classifier.observe``. For a packet of a flow whose verdict is cached,
that chain does only four things: find the flow by its normalised 5-tuple, update ``last_seen``,
the direction and the counters, mark ``tcp_closing`` on FIN/RST, and return the cached verdict.
Most packets of a capture are such packets (a flow is decided within its first few), and building
a ``Packet`` for them is most of their cost. ``count_decided`` does the same four things straight
from the frame's bytes, with one struct read, and answers None whenever the reference path could
do anything else: a flow that is new, undecided or idle past the timeout, a SYN on a closing flow
(it reopens the 5-tuple as a new flow), a sweep that is due, a fragment, IPv4 options, IPv6
extension headers, a tunnel port, a link type other than Ethernet/raw IP, or a header the decoder
would refuse. The caller then takes the reference path for that packet.

``replay`` is the whole per-packet loop of ``tspulab replay`` (shortcut, else the reference
path), kept here rather than in tspulab/replay.py so that it is compiled with this module
(tspulab/dpi/compiled.py): the loop's own dispatch is a measurable share of a decided packet's
cost.

``tests/unit/dpi/test_fastpath.py`` checks, packet by packet (hypothesis, real and mutated
frames, idle gaps), that replaying with the shortcut leaves exactly the flows, counters and
verdicts the reference path leaves. Measured gain: docs/dpi.md, "Throughput".
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tspulab.dpi.errors import DecodeError
from tspulab.dpi.flow import FlowState, FlowTable
from tspulab.dpi.packet import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    PORT_GTP_U,
    PORT_VXLAN,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    decode,
)

if TYPE_CHECKING:
    from tspulab.dpi.classify import Classifier

# IPv4: total length, flags+fragment offset, protocol, addresses, ports, TCP data offset and flags
# (for UDP the last two are payload bytes, unused). IPv6: payload length, next header, addresses,
# then the same transport fields.
_V4 = struct.Struct("!2xH2xH1xB2x4s4sHH8xBB").unpack_from
_V6 = struct.Struct("!4xHB1x16s16sHH8xBB").unpack_from
_FIN_OR_RST = TCP_FIN | TCP_RST
_SYN_OR_ACK = TCP_SYN | TCP_ACK


def count_decided(table: FlowTable, frame: bytes, linktype: int, now: float) -> FlowState | None:
    """Account ``frame`` to its decided flow and return the flow, or None: take the reference
    path (decode, lookup, observe) for this frame."""
    if linktype == LINKTYPE_RAW:
        offset = 0
        ethertype = b""
    elif linktype == LINKTYPE_ETHERNET:
        offset = 14
        ethertype = frame[12:14]
    else:
        return None
    size = len(frame)
    if size < offset + 40:
        return None
    first = frame[offset]
    if first == 0x45 and (not ethertype or ethertype == b"\x08\x00"):
        ip_len, frag_field, proto, src, dst, sport, dport, data_off, flags = _V4(frame, offset)
        end = offset + ip_len
        if frag_field & 0x3FFF or end > size:
            return None
        l4 = offset + 20
    elif first >> 4 == 6 and (not ethertype or ethertype == b"\x86\xdd") and size >= offset + 60:
        payload_len, proto, src, dst, sport, dport, data_off, flags = _V6(frame, offset)
        end = offset + 40 + payload_len
        if not payload_len or end > size:
            return None
        ip_len = payload_len + 40
        l4 = offset + 40
    else:
        return None
    if proto == PROTO_TCP:
        if data_off < 0x50 or l4 + (data_off >> 4) * 4 > end:
            return None
    elif proto == PROTO_UDP:
        if end < l4 + 8 or sport in (PORT_GTP_U, PORT_VXLAN) or dport in (PORT_GTP_U, PORT_VXLAN):
            return None
        flags = 0
    else:
        return None
    if src < dst or (src == dst and sport <= dport):
        key = (proto, src, sport, dst, dport)
    else:
        key = (proto, dst, dport, src, sport)
    flow = table.flow_for_key(key)
    if (
        flow is None
        or flow.classification is None
        or (flow.tcp_closing and flags & _SYN_OR_ACK == TCP_SYN and proto == PROTO_TCP)
        or now - flow.last_seen > table.idle_timeout
        or now >= table.next_sweep
    ):
        return None  # new, undecided, reopened by a SYN after FIN/RST, idle, or a sweep is due
    flow.last_seen = now
    if src == flow.client_addr and sport == flow.client_port:
        flow.from_client = True
        flow.packets_from_client += 1
        flow.bytes_from_client += ip_len
    else:
        flow.from_client = False
        flow.packets_from_server += 1
        flow.bytes_from_server += ip_len
    if flags & _FIN_OR_RST and proto == PROTO_TCP:
        flow.tcp_closing = True
    return flow


def replay(
    frames: Iterable[tuple[float, int, bytes]],
    table: FlowTable,
    classifier: Classifier,
    undecoded: Counter[str] | None = None,
) -> int:
    """Feed (timestamp, linktype, frame) through ``table`` and ``classifier``: a decided flow's
    packet by ``count_decided``, any other by decode -> lookup -> observe. Frames the decoder
    refuses are counted in ``undecoded`` by error class. Returns the number of frames."""
    lookup = table.lookup
    observe = classifier.observe
    refused: Counter[str] = Counter() if undecoded is None else undecoded
    count = 0
    for ts, linktype, frame in frames:
        count += 1
        if count_decided(table, frame, linktype, ts) is not None:
            continue
        try:
            pkt = decode(frame, linktype)
        except DecodeError as err:
            refused[type(err).__name__] += 1
            continue
        observe(pkt, lookup(pkt, ts), ts)
    return count
