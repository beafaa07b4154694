"""Flow table: normalised keys, initiator, inside, counters, idle expiry, port reuse, fragments."""

from __future__ import annotations

import ipaddress

from crafting import tcp_frame, udp_frame
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether

from tspulab.dpi.flow import FlowTable, flow_key
from tspulab.dpi.packet import decode


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
