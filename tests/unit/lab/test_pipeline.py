"""Registry → flow rules, checked on a fake flow table and as real OpenFlow 1.3 messages."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
from tspulab.controllers.ofmsgs import flow_mod
from tspulab.controllers.pipeline import (
    COOKIE_REGISTRY,
    TspuPorts,
    goto,
    registry_rules,
    table,
    tspu_rules,
)

from tests.unit.fakeoftable import FakeFlowTable, Pkt
from tspulab.dpi.registry import Registry

PORTS = TspuPorts(subscriber=1, upstream=2)


def _rules(*entries: str) -> FakeFlowTable:
    reg = Registry()
    for e in entries:
        reg.add_address(e, source="test")
    return FakeFlowTable(tspu_rules(reg.aggregated_prefixes(), PORTS))


def test_registry_prefix_dropped_both_directions_rest_forwarded() -> None:
    ft = _rules("18.196.0.0/15", "149.154.167.99")
    # Subscriber → blocked prefix, and the reply direction, are dropped.
    assert ft.outputs(Pkt(1, "10.10.0.11", "18.197.25.40")) == []
    assert ft.outputs(Pkt(2, "18.197.25.40", "10.10.0.11")) == []
    assert ft.outputs(Pkt(1, "10.10.0.11", "149.154.167.99")) == []
    # Outside the registry: a bump in the wire.
    assert ft.outputs(Pkt(1, "10.10.0.11", "35.190.4.12")) == [2]
    assert ft.outputs(Pkt(2, "35.190.4.12", "10.10.0.11")) == [1]
    assert ft.outputs(Pkt(1, "10.10.0.11", "149.154.167.100")) == [2]
    assert ft.outputs(Pkt(1, "10.10.0.11", "18.198.0.1")) == [2]


def test_ipv6_prefix() -> None:
    ft = _rules("2001:67c:4e8::/48")
    assert ft.outputs(Pkt(1, "fd00::11", "2001:67c:4e8:f004::a")) == []
    assert ft.outputs(Pkt(1, "fd00::11", "2001:67c:4e9::a")) == [2]


def test_aggregated_prefixes_give_two_rules_each() -> None:
    reg = Registry()
    for e in ("91.108.8.0/22", "91.108.12.0/22", "18.196.0.0/16", "18.197.0.0/16"):
        reg.add_address(e, source="test")
    prefixes = reg.aggregated_prefixes()
    assert [str(p) for p in prefixes] == ["18.196.0.0/15", "91.108.8.0/21"] or sorted(
        map(str, prefixes)
    ) == ["18.196.0.0/15", "91.108.8.0/21"]
    rules = registry_rules(prefixes)
    assert len(rules) == 4
    assert all(r.cookie == COOKIE_REGISTRY and r.is_drop for r in rules)


def test_goto_refuses_undeclared_edge() -> None:
    assert goto("registry", "forward") == table("forward").table_id
    with pytest.raises(ValueError):
        goto("forward", "registry")


def test_rules_serialise_as_openflow13() -> None:
    datapath = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser, id=2)
    rules = tspu_rules([ipaddress.ip_network("18.196.0.0/15")], PORTS)
    for rule in rules:
        msg = flow_mod(datapath, rule)
        msg.serialize()
        assert msg.table_id == table(rule.table).table_id
        assert bool(msg.instructions) != rule.is_drop
