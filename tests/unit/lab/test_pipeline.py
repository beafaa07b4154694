"""Registry and verdicts → flow rules → OpenFlow 1.3 bytes, applied to a switch model."""

from __future__ import annotations

import ipaddress

import pytest

from tests.unit.fakeoftable import FakeOFTable, Pkt
from tspulab.controllers.ofmsgs import (
    flow_mod,
    meter_mod,
    packet_out,
    reference_flow_mod,
    reference_packet_out,
    to_bytes,
)
from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    COOKIE_MISS,
    COOKIE_REGISTRY,
    PIPELINE,
    DirectionTreatment,
    FlowEndpoints,
    FlowRule,
    GotoTable,
    MeterSpec,
    Mirror,
    TspuPorts,
    goto,
    judged_rules,
    registry_rules,
    table,
    tspu_rules,
)
from tspulab.dpi.registry import Registry

PORTS = TspuPorts(subscriber=1, upstream=2)
SUB, SRV = "10.10.0.11", "35.190.4.12"


def _switch(rules: list[FlowRule], meters: list[MeterSpec] = ()) -> FakeOFTable:  # type: ignore[assignment]
    ft = FakeOFTable().apply([*(meter_mod(m) for m in meters), *(flow_mod(r) for r in rules)])
    assert ft.errors == []
    return ft


def _rules(*entries: str, inspect: bool = False, mirror: Mirror | None = None) -> FakeOFTable:
    reg = Registry()
    for e in entries:
        reg.add_address(e, source="test")
    return _switch(tspu_rules(reg.aggregated_prefixes(), PORTS, inspect=inspect, mirror=mirror))


def test_registry_prefix_dropped_both_directions_rest_forwarded() -> None:
    ft = _rules("18.196.0.0/15", "149.154.167.99")
    # Subscriber → blocked prefix, and the reply direction, are dropped.
    assert ft.outputs(Pkt(1, SUB, "18.197.25.40")) == []
    assert ft.outputs(Pkt(2, "18.197.25.40", SUB)) == []
    assert ft.outputs(Pkt(1, SUB, "149.154.167.99")) == []
    assert ft.outputs(Pkt(1, SUB, "149.154.167.99", proto=1)) == [], "ICMP too (§2.2 IP)"
    # Outside the registry: a bump in the wire.
    assert ft.outputs(Pkt(1, SUB, SRV)) == [2]
    assert ft.outputs(Pkt(2, SRV, SUB)) == [1]
    assert ft.outputs(Pkt(1, SUB, "149.154.167.100")) == [2]
    assert ft.outputs(Pkt(1, SUB, "18.198.0.1")) == [2]


def test_ipv6_prefix() -> None:
    ft = _rules("2001:67c:4e8::/48")
    assert ft.outputs(Pkt(1, "fd00::11", "2001:67c:4e8:f004::a")) == []
    assert ft.outputs(Pkt(1, "fd00::11", "2001:67c:4e9::a")) == [2]


def test_without_the_table_miss_rules_everything_is_dropped() -> None:
    """OpenFlow 1.3's own table miss is drop: the pipeline's declared misses must be rules."""
    rules = [r for r in tspu_rules([], PORTS, inspect=True) if r.cookie != COOKIE_MISS]
    ft = _switch(rules)
    assert ft.outputs(Pkt(1, SUB, SRV)) == []
    assert ft.outputs(Pkt(1, SUB, SRV, proto=1)) == []
    misses = [r for r in tspu_rules([], PORTS) if r.cookie == COOKIE_MISS]
    assert {r.table for r in misses} == {t.name for t in PIPELINE if t.miss is not None}


def test_aggregated_prefixes_give_two_rules_each() -> None:
    reg = Registry()
    for e in ("91.108.8.0/22", "91.108.12.0/22", "18.196.0.0/16", "18.197.0.0/16"):
        reg.add_address(e, source="test")
    prefixes = reg.aggregated_prefixes()
    assert sorted(map(str, prefixes)) == ["18.196.0.0/15", "91.108.8.0/21"]
    rules = registry_rules(prefixes)
    assert len(rules) == 4
    assert all(r.cookie == COOKIE_REGISTRY and r.is_drop for r in rules)


def test_unjudged_tcp_udp_climb_to_controller_other_traffic_passes() -> None:
    ft = _rules("18.196.0.0/15", inspect=True)
    assert ft.outputs(Pkt(1, SUB, SRV)) == [CONTROLLER_PORT]
    assert ft.outputs(Pkt(2, SRV, SUB, proto=17, sport=443, dport=5000)) == [CONTROLLER_PORT]
    assert ft.outputs(Pkt(1, SUB, SRV, proto=1)) == [2], "ICMP is not inspected"
    assert ft.outputs(Pkt(1, SUB, "18.196.0.1")) == [], "the registry comes first"


def test_mirror_copies_syns_and_forwards_syn_acks() -> None:
    ft = _rules(inspect=True, mirror=Mirror(tcp_syn=True))
    assert ft.outputs(Pkt(1, SUB, SRV, tcp_flags=0x002)) == [CONTROLLER_PORT, 2]
    assert ft.outputs(Pkt(2, SRV, SUB, sport=443, dport=40000, tcp_flags=0x012)) == [1]
    # a SYN from the server side (split handshake, §2.3) is copied like the client's
    assert ft.outputs(Pkt(2, SRV, SUB, sport=443, dport=40000, tcp_flags=0x002)) == [
        CONTROLLER_PORT,
        1,
    ]
    # The ClientHello (and any other undecided packet) is diverted: its fate needs the verdict.
    assert ft.outputs(Pkt(1, SUB, SRV, tcp_flags=0x018)) == [CONTROLLER_PORT]
    assert ft.outputs(Pkt(1, SUB, SRV, proto=17, dport=53)) == [CONTROLLER_PORT]
    ft = _rules(inspect=True, mirror=Mirror(udp=True, udp_divert_ports=(443,)))
    assert ft.outputs(Pkt(1, SUB, SRV, proto=17, dport=53)) == [CONTROLLER_PORT, 2]
    assert ft.outputs(Pkt(1, SUB, SRV, proto=17, dport=443)) == [CONTROLLER_PORT]
    assert ft.outputs(Pkt(2, SRV, SUB, proto=17, sport=443, dport=9)) == [CONTROLLER_PORT]
    assert ft.outputs(Pkt(1, SUB, SRV, tcp_flags=0x002)) == [CONTROLLER_PORT], "SYN: not asked"


def _judged(up: DirectionTreatment, down: DirectionTreatment, meters=()) -> FakeOFTable:  # type: ignore[no-untyped-def]
    ep = FlowEndpoints(6, SUB, 40000, SRV, 443)
    base = tspu_rules([], PORTS, inspect=True)
    return _switch([*base, *judged_rules(ep, up, down, idle_timeout=600)], list(meters))


def test_judged_flow_leaves_the_controller_path() -> None:
    ft = _judged(DirectionTreatment("forward"), DirectionTreatment("forward"))
    assert ft.outputs(Pkt(1, SUB, SRV)) == [2]
    assert ft.outputs(Pkt(2, SRV, SUB, sport=443, dport=40000)) == [1]
    # Another connection of the same pair is a new flow: it is inspected.
    assert ft.outputs(Pkt(1, SUB, SRV, sport=40001)) == [CONTROLLER_PORT]


def test_judged_drop_and_meter_and_controller_directions() -> None:
    ft = _judged(DirectionTreatment("drop"), DirectionTreatment("controller"))
    assert ft.outputs(Pkt(1, SUB, SRV)) == []
    assert ft.outputs(Pkt(2, SRV, SUB, sport=443, dport=40000)) == [CONTROLLER_PORT]
    meters = [MeterSpec(7, 130, 160), MeterSpec(8, 130, 160)]
    ft = _judged(DirectionTreatment("meter", 7), DirectionTreatment("meter", 8), meters)
    out = ft.process(Pkt(1, SUB, SRV))
    assert out.ports == [2] and out.meters == [7]
    assert ft.meters[7][0].rate == 130 and ft.meters[7][0].burst_size == 160


def test_switch_refuses_a_rule_on_a_missing_meter() -> None:
    ep = FlowEndpoints(6, SUB, 40000, SRV, 443)
    rules = judged_rules(ep, DirectionTreatment("meter", 9), DirectionTreatment("forward"))
    ft = FakeOFTable().apply(flow_mod(r) for r in rules)
    assert ft.errors == ["unknown meter 9"]


def test_deleting_a_meter_deletes_its_flows() -> None:
    ft = _judged(
        DirectionTreatment("meter", 7), DirectionTreatment("forward"), [MeterSpec(7, 1, 1)]
    )
    ft.apply([meter_mod(MeterSpec(7, 1, 1), "delete")])
    assert ft.outputs(Pkt(1, SUB, SRV)) == [CONTROLLER_PORT], "the flow is back to inspection"
    assert ft.outputs(Pkt(2, SRV, SUB, sport=443, dport=40000)) == [1]


def test_goto_refuses_undeclared_edge() -> None:
    assert goto("registry", "judged") == table("judged").table_id
    with pytest.raises(ValueError):
        goto("forward", "registry")
    with pytest.raises(ValueError):
        goto("inspect", "registry")
    with pytest.raises(ValueError):
        FlowRule("inspect", 1, (), (GotoTable("judged"),))


def test_templates_equal_os_ken_bytes_for_every_rule_kind() -> None:
    """The hot path packs flow-mods with struct templates; they must be os-ken's bytes."""
    ep4 = FlowEndpoints(6, SUB, 40000, SRV, 443)
    ep6 = FlowEndpoints(17, "fd00::11", 5353, "2001:db8::1", 443)
    rules = [
        *tspu_rules(
            [ipaddress.ip_network("18.196.0.0/15"), ipaddress.ip_network("2001:67c:4e8::/48")],
            PORTS,
            inspect=True,
            mirror=Mirror(tcp_syn=True, udp=True, udp_divert_ports=(443, 53)),
            bypass=("10.10.0.99", "fd00::99"),
        ),
        *judged_rules(
            ep4, DirectionTreatment("meter", 3), DirectionTreatment("controller"), idle_timeout=600
        ),
        *judged_rules(
            ep6, DirectionTreatment("drop"), DirectionTreatment("forward"), hard_timeout=30
        ),
    ]
    for rule in rules:
        for command in ("add", "delete"):
            assert to_bytes(flow_mod(rule, command)) == to_bytes(
                reference_flow_mod(rule, command)
            ), (rule, command)


def test_packet_out_template_equals_os_ken_bytes() -> None:
    frame = bytes(range(60))
    for in_port, out_port in ((1, 2), (2, 1), (1, 1)):
        assert to_bytes(packet_out(frame, in_port, out_port)) == to_bytes(
            reference_packet_out(frame, in_port, out_port)
        )
