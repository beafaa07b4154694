"""The flow table: which connection a packet belongs to, who started it, and what it has carried.

What is modelled: a stateful middlebox's connection table. A flow is keyed by the normalised
5-tuple (protocol, then the two (address, port) endpoints in sorted order), so both directions meet
in one entry. Each entry knows

- its initiator (the *client*): the sender of the first packet seen, except that a first packet
  that is a TCP SYN+ACK names its receiver (the capture started after the SYN);
- whether the initiator is *inside* (a subscriber): with subscriber networks configured, the
  client address is in one of them; with none configured, the first sender is inside by definition
  (the TSPU sits at the subscriber edge and sees subscribers' packets first);
- per-direction packet and byte counts (IP bytes), first and last activity;
- the classifier's per-flow inspection state and its cached verdict (``classification``);
- the engine's verdict and enforcement record (``judgement``).

Time is always an argument. A flow idle longer than ``idle_timeout`` is forgotten, and a TCP SYN
(without ACK) on a flow that already saw FIN or RST starts a new flow (port reuse). IP fragments
are not reassembled (tspu-behaviour.md §2.4): a first fragment is keyed by its ports as usual and
remembered by (src, dst, protocol, id), so later fragments of the same datagram are counted to the
same flow; fragments whose first fragment was not seen go to a port-less flow of their addresses.

Bounded memory: the table holds at most ``max_flows`` flows (default 262,144). A new flow that
finds the table full first triggers an idle sweep; if the table is still full, the flow that has
been in the table longest (first created; a flow replaced on its 5-tuple counts as new) is evicted
to ``expired`` and counted in ``evicted``. So a flood of new flows (a SYN flood, a port scan, a
fuzzer) costs at most ``max_flows`` entries, each bounded too (the classifier drops its buffers
once a flow is decided; undecided TCP streams stop at 64 KiB a direction). Oldest-first is the
simple, predictable choice; a real box under a flood loses its oldest state the same way, and a
live flow evicted by a flood is re-created by its next packet (then mid-connection, with a fresh
inspection budget). Fragment records are bounded the same way (``max_fragment_records``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tspulab.dpi.packet import PROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet

if TYPE_CHECKING:
    from tspulab.dpi.classify import Classification
    from tspulab.dpi.engine import Judgement

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FlowKey = tuple[int, bytes, int, bytes, int]
"""(protocol, addr_a, port_a, addr_b, port_b) with (addr_a, port_a) <= (addr_b, port_b)."""

MAX_FRAGMENTS_PER_DATAGRAM = 45  # the 2022 TSPU's fragment cache bound (tspu-behaviour.md §2.4)
DEFAULT_MAX_FLOWS = 262_144
_FIN_OR_RST = TCP_FIN | TCP_RST
DEFAULT_MAX_FRAGMENT_RECORDS = 65_536


@dataclass(slots=True)
class FlowState:
    """One connection as the middlebox tracks it."""

    key: FlowKey
    proto: int
    client_addr: bytes
    client_port: int
    server_addr: bytes
    server_port: int
    initiated_inside: bool
    """True when the client (initiator) is a subscriber (see module docstring)."""
    first_seen: float
    last_seen: float
    packets_from_client: int = 0
    bytes_from_client: int = 0
    packets_from_server: int = 0
    bytes_from_server: int = 0
    from_client: bool = True
    """Direction of the packet most recently looked up (set by ``FlowTable.lookup``)."""
    tcp_closing: bool = False
    """A FIN or RST was seen."""
    classification: Classification | None = None
    """The classifier's cached verdict once decided; set by the classifier only."""
    inspection: object | None = field(default=None, repr=False)
    """The classifier's per-flow inspection state (opaque to the table)."""
    judgement: Judgement | None = field(default=None, repr=False)
    """The engine's per-flow record (verdict, budget, enforcement counters); set by the engine
    only. Kept here so the flow's state lives and expires in one place, the table."""

    @property
    def packets(self) -> int:
        return self.packets_from_client + self.packets_from_server

    @property
    def bytes(self) -> int:
        return self.bytes_from_client + self.bytes_from_server


def flow_key(pkt: Packet) -> FlowKey:
    """The normalised 5-tuple of a packet."""
    src, dst, sport, dport = pkt.src, pkt.dst, pkt.sport, pkt.dport
    if src < dst or (src == dst and sport <= dport):
        return (pkt.proto, src, sport, dst, dport)
    return (pkt.proto, dst, dport, src, sport)


class FlowTable:
    """Flows by normalised 5-tuple, with idle expiry. Time is an argument, never read here."""

    def __init__(
        self,
        subscriber_nets: tuple[Network, ...] = (),
        idle_timeout: float = 300.0,
        max_flows: int = DEFAULT_MAX_FLOWS,
        max_fragment_records: int = DEFAULT_MAX_FRAGMENT_RECORDS,
    ) -> None:
        if max_flows < 1 or max_fragment_records < 1:
            raise ValueError("max_flows and max_fragment_records must be at least 1")
        self.subscriber_nets = subscriber_nets
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self.max_fragment_records = max_fragment_records
        self.evicted = 0
        """Flows evicted because the table was full (see the module docstring)."""
        self._flows: dict[FlowKey, FlowState] = {}
        # (src, dst, proto, frag id) -> (flow key, fragments seen, last time)
        self._fragments: dict[tuple[bytes, bytes, int, int], tuple[FlowKey, int, float]] = {}
        self.next_sweep = float("-inf")
        """When ``lookup`` next runs the idle sweep (read by fastpath.py; set only here)."""
        self.flow_for_key: Callable[[FlowKey], FlowState | None] = self._flows.get
        """The flow stored under a key, as is (no expiry, no counting): for fastpath.py. The dict's
        own bound ``get``, so the fast path pays no Python call for it."""
        self.expired: list[FlowState] = []
        """Flows removed by idle expiry or replaced by a new connection, oldest first, until the
        caller drains it (replay reports them; a live controller clears it)."""

    def __len__(self) -> int:
        return len(self._flows)

    def flows(self) -> list[FlowState]:
        return list(self._flows.values())

    def sweep_due(self, now: float) -> bool:
        """True when the next ``lookup`` at ``now`` would run the idle sweep."""
        return now >= self.next_sweep

    def lookup(self, pkt: Packet, now: float) -> FlowState:
        """The flow of ``pkt``, created if new; direction resolved and counters updated."""
        src, sport = pkt.src, pkt.sport
        if pkt.frag_id >= 0:
            key = self._fragment_key(pkt, now)
        else:
            dst, dport = pkt.dst, pkt.dport
            if src < dst or (src == dst and sport <= dport):
                key = (pkt.proto, src, sport, dst, dport)
            else:
                key = (pkt.proto, dst, dport, src, sport)
        flow = self._flows.get(key)
        if (
            flow is None
            or now - flow.last_seen > self.idle_timeout
            or (flow.tcp_closing and self._reopens(flow, pkt))
        ):
            if flow is not None:
                self.expired.append(flow)
                del self._flows[key]  # re-inserted below: the new connection is the newest entry
            elif len(self._flows) >= self.max_flows:
                self._make_room(now)
            flow = self._create(key, pkt, now)
            self._flows[key] = flow
        if now >= self.next_sweep:
            self._sweep(now)
        flow.last_seen = now
        if src == flow.client_addr and sport == flow.client_port:
            flow.from_client = True
            flow.packets_from_client += 1
            flow.bytes_from_client += pkt.ip_len
        else:
            flow.from_client = False
            flow.packets_from_server += 1
            flow.bytes_from_server += pkt.ip_len
        if pkt.tcp_flags & _FIN_OR_RST and pkt.proto == PROTO_TCP:
            flow.tcp_closing = True
        return flow

    @staticmethod
    def _reopens(flow: FlowState, pkt: Packet) -> bool:
        return (
            flow.tcp_closing
            and pkt.proto == PROTO_TCP
            and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        )

    def _create(self, key: FlowKey, pkt: Packet, now: float) -> FlowState:
        client_addr, client_port, server_addr, server_port = pkt.src, pkt.sport, pkt.dst, pkt.dport
        if pkt.proto == PROTO_TCP and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK:
            client_addr, client_port, server_addr, server_port = (
                server_addr, server_port, client_addr, client_port,
            )  # fmt: skip
        inside = True
        if self.subscriber_nets:
            addr = ipaddress.ip_address(client_addr)
            inside = any(addr in net for net in self.subscriber_nets if net.version == addr.version)
        return FlowState(
            key=key,
            proto=pkt.proto,
            client_addr=client_addr,
            client_port=client_port,
            server_addr=server_addr,
            server_port=server_port,
            initiated_inside=inside,
            first_seen=now,
            last_seen=now,
        )

    def _make_room(self, now: float) -> None:
        """The table is full: sweep idle flows if a sweep is due, and if that frees nothing,
        evict the oldest. Sweeping on every insertion into a full table cost an O(n) scan per new
        flow (60-185 ms at the default limit: a flood slowed the box to ~10 new flows/s)."""
        if now >= self.next_sweep:
            self._sweep(now)
        flows = self._flows
        while len(flows) >= self.max_flows:
            oldest = next(iter(flows))
            self.expired.append(flows.pop(oldest))
            self.evicted += 1

    def _fragment_key(self, pkt: Packet, now: float) -> FlowKey:
        frag = (pkt.src, pkt.dst, pkt.proto, pkt.frag_id)
        known = self._fragments.get(frag)
        if pkt.frag_offset == 0:
            key = flow_key(pkt)
            if known is None and len(self._fragments) >= self.max_fragment_records:
                del self._fragments[next(iter(self._fragments))]  # the oldest record goes
            self._fragments[frag] = (key, 1, now)
            return key
        if known is not None and known[1] < MAX_FRAGMENTS_PER_DATAGRAM:
            self._fragments[frag] = (known[0], known[1] + 1, now)
            return known[0]
        # First fragment unseen (or the datagram exceeded the cache bound): a port-less flow.
        a, b = sorted((pkt.src, pkt.dst))
        return (pkt.proto, a, 0, b, 0)

    def _sweep(self, now: float) -> None:
        """Forget idle flows and fragment records; runs at most every quarter idle timeout, so its
        O(n) scan is amortised over the packets in between."""
        limit = now - self.idle_timeout
        idle = [key for key, flow in self._flows.items() if flow.last_seen < limit]
        for key in idle:
            self.expired.append(self._flows.pop(key))
        stale = [k for k, (_, _, seen) in self._fragments.items() if seen < limit]
        for k in stale:
            del self._fragments[k]
        self.next_sweep = now + self.idle_timeout / 4

    def expire_all(self) -> list[FlowState]:
        """Remove and return every flow (end of a capture), after those already expired."""
        out = self.expired + list(self._flows.values())
        self.expired = []
        self._flows.clear()
        self._fragments.clear()
        return out
