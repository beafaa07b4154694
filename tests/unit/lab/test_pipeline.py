"""Registry and verdicts → flow rules, checked on a fake flow table and as OF1.3 messages."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from tests.unit.fakeoftable import FakeFlowTable, Pkt
from tspulab.controllers.ofmsgs import flow_mod, meter_mod
from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    COOKIE_REGISTRY,
    DirectionTreatment,
    FlowEndpoints,
    MeterSpec,
    TspuPorts,
    goto,
    host_block_rules,
    judged_rules,
    registry_rules,
    table,
    tspu_rules,
)
from tspulab.dpi.registry import Registry

PORTS = TspuPorts(subscriber=1, upstream=2)
SUB, SRV = "10.10.0.11", "35.190.4.12"


def _rules(*entries: str, inspect: bool = False) -> FakeFlowTable:
    reg = Registry()
    for e in entries:
        reg.add_address(e, source="test")
    return FakeFlowTable(tspu_rules(reg.aggregated_prefixes(), PORTS, inspect=inspect))


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


def _judged(up: DirectionTreatment, down: DirectionTreatment) -> FakeFlowTable:
    ep = FlowEndpoints(6, SUB, 40000, SRV, 443)
    base = tspu_rules([], PORTS, inspect=True)
    return FakeFlowTable([*base, *judged_rules(ep, up, down, idle_timeout=600)])


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
    ft = _judged(DirectionTreatment("meter", 7), DirectionTreatment("meter", 8))
    assert ft.outputs(Pkt(1, SUB, SRV)) == [2]
    assert ft.meters_passed == [7]


def test_host_block_beats_judged_flows() -> None:
    ep = FlowEndpoints(17, SUB, 5000, SRV, 51820)
    rules = [
        *tspu_rules([], PORTS, inspect=True),
        *judged_rules(ep, DirectionTreatment("forward"), DirectionTreatment("forward")),
        *host_block_rules(SRV, hard_timeout=600),
    ]
    ft = FakeFlowTable(rules)
    assert ft.outputs(Pkt(1, SUB, SRV, proto=17, sport=5000, dport=51820)) == []
    assert ft.outputs(Pkt(1, SUB, SRV)) == []
    assert all(r.hard_timeout == 600 for r in rules if r.kind == "host-block")


def test_goto_refuses_undeclared_edge() -> None:
    assert goto("registry", "judged") == table("judged").table_id
    with pytest.raises(ValueError):
        goto("forward", "registry")
    with pytest.raises(ValueError):
        goto("inspect", "registry")


def test_rules_serialise_as_openflow13() -> None:
    datapath = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser, id=2)
    ep = FlowEndpoints(6, SUB, 40000, SRV, 443)
    rules = [
        *tspu_rules([ipaddress.ip_network("18.196.0.0/15")], PORTS),
        *judged_rules(ep, DirectionTreatment("meter", 3), DirectionTreatment("controller")),
        *host_block_rules("2001:db8::1", 60),
    ]
    for rule in rules:
        msg = flow_mod(datapath, rule)
        msg.serialize()
        assert msg.table_id == table(rule.table).table_id
        assert bool(msg.instructions) != (rule.is_drop and not rule.actions)
    m = meter_mod(datapath, MeterSpec(3, rate_kbps=130, burst_kbits=160))
    m.serialize()
    assert m.bands[0].rate == 130
