"""Flow table: normalised keys, initiator, inside, counters, idle expiry, port reuse, fragments."""

from __future__ import annotations

import ipaddress

from crafting import tcp_frame, udp_frame
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether

from tspulab.dpi.flow import FlowTable, flow_key
from tspulab.dpi.packet import PROTO_UDP, Packet, decode


def test_both_directions_share_one_flow_and_counters() -> None:
    table = FlowTable()
    out = decode(tcp_frame(b"abc", 1, "S"))
    back = decode(tcp_frame(b"", 1, "SA", from_client=False))
    assert flow_key(out) == flow_key(back)
    f1 = table.lookup(out, 0.0)
    assert f1.from_client
    f2 = table.lookup(back, 0.1)
    assert f2 is f1 and not f2.from_client
    assert (f1.packets_from_client, f1.packets_from_server) == (1, 1)
    assert f1.bytes_from_client == out.ip_len and f1.bytes_from_server == back.ip_len
    assert f1.packets == 2 and len(table) == 1


def test_first_packet_syn_ack_names_the_receiver_as_client() -> None:
    table = FlowTable()
    flow = table.lookup(decode(tcp_frame(b"", 1, "SA", from_client=False)), 0.0)
    assert flow.client_port == 40000 and flow.server_port == 443
    assert not flow.from_client


def test_inside_from_subscriber_networks() -> None:
    nets = (ipaddress.ip_network("10.0.0.0/8"),)
    inbound = decode(tcp_frame(b"", 1, "S", from_client=False, sport=40001))
    assert FlowTable(nets).lookup(inbound, 0.0).initiated_inside is False
    outbound = decode(tcp_frame(b"", 1, "S"))
    assert FlowTable(nets).lookup(outbound, 0.0).initiated_inside is True
    # With no networks configured, the first sender is inside by definition.
    assert FlowTable().lookup(inbound, 0.0).initiated_inside is True


def test_idle_expiry_starts_a_new_flow() -> None:
    table = FlowTable(idle_timeout=30.0)
    pkt = decode(udp_frame(b"x"))
    first = table.lookup(pkt, 0.0)
    assert table.lookup(pkt, 29.0) is first
    second = table.lookup(pkt, 60.0)
    assert second is not first and second.packets == 1
    assert table.expired == [first]


def test_sweep_removes_idle_flows_without_traffic() -> None:
    table = FlowTable(idle_timeout=10.0)
    table.lookup(decode(udp_frame(b"x", sport=1)), 0.0)
    table.lookup(decode(udp_frame(b"x", sport=2)), 100.0)
    assert len(table) == 1 and len(table.expired) == 1


def test_syn_after_fin_is_a_new_connection() -> None:
    table = FlowTable()
    first = table.lookup(decode(tcp_frame(b"", 1, "S")), 0.0)
    table.lookup(decode(tcp_frame(b"", 5, "FA")), 1.0)
    assert table.lookup(decode(tcp_frame(b"", 900, "S")), 2.0) is not first


def test_fragments_are_counted_to_the_flow_of_their_first_fragment() -> None:
    table = FlowTable()
    datagram = IP(src="10.0.0.2", dst="1.2.3.4", id=7) / UDP(sport=5000, dport=443) / (b"Q" * 1400)
    frames = [decode(bytes(Ether() / f)) for f in fragment(datagram, fragsize=600)]
    flows = {id(table.lookup(p, 0.0)) for p in frames}
    assert len(flows) == 1 and len(table) == 1
    (flow,) = table.flows()
    assert (flow.client_port, flow.server_port, flow.packets) == (5000, 443, len(frames))


def test_orphan_fragments_go_to_a_portless_flow() -> None:
    table = FlowTable()
    datagram = IP(src="10.0.0.2", dst="1.2.3.4", id=8) / UDP(sport=5000, dport=443) / (b"Q" * 1400)
    later = decode(bytes(Ether() / fragment(datagram, fragsize=600)[1]))
    flow = table.lookup(later, 0.0)
    assert (flow.client_port, flow.server_port) == (0, 0)


def test_expire_all_returns_everything_once() -> None:
    table = FlowTable()
    table.lookup(decode(udp_frame(b"x", sport=1)), 0.0)
    table.lookup(decode(udp_frame(b"x", sport=2)), 0.0)
    assert len(table.expire_all()) == 2 and len(table) == 0 and table.expire_all() == []


def test_flow_table_is_bounded_and_evicts_the_oldest() -> None:
    """A flood of new flows (a port scan) never grows the table past max_flows; the flow that was
    in the table longest goes first, to ``expired``, and is counted."""
    table = FlowTable(max_flows=100)
    first = None
    for port in range(1000, 1500):
        flow = table.lookup(_udp(port), 1.0)
        first = first or flow
        assert len(table) <= 100
    assert len(table) == 100 and table.evicted == 400
    assert table.expired[0] is first
    survivors = {f.client_port for f in table.flows()}
    assert survivors == set(range(1400, 1500))


def test_full_table_sweeps_idle_flows_before_evicting() -> None:
    table = FlowTable(idle_timeout=10.0, max_flows=10)
    for port in range(10):
        table.lookup(_udp(port + 1), 0.0)
    table.lookup(_udp(100), 1.0)  # nothing idle yet: one eviction
    assert table.evicted == 1
    table.lookup(_udp(101), 20.0)  # everything else is idle: swept, not evicted
    assert table.evicted == 1 and len(table) == 1


def test_fragment_records_are_bounded() -> None:
    table = FlowTable(max_fragment_records=8)
    for ident in range(50):
        pkt = _udp(2000)
        pkt.frag_id, pkt.more_fragments = ident, True
        table.lookup(pkt, 0.0)
    assert len(table._fragments) <= 8


def _udp(sport: int) -> Packet:
    return Packet(4, b"\x0a\x00\x00\x02", b"\x01\x02\x03\x04", PROTO_UDP, sport, 53, b"q", 29, 64)
