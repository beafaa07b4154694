"""Scenario → registry and lab plan; probe results → the report's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.metrics.summary import ServiceSpec, summarise
from tspulab.scenario.build import build_registry, plan_lab
from tspulab.scenario.probes import parse_curl_output
from tspulab.scenario.schema import load_scenario

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def test_demo_registry_counts_and_aggregation() -> None:
    registry = build_registry(load_scenario(DEMO))
    # Telegram's own subnets under 2-1779/2018: 9,472 addresses (timeline.csv), + one AWS /15.
    assert registry.address_count(4) == 9_472 + 131_072
    assert sorted(map(str, registry.aggregated_prefixes())) == [
        "109.239.140.0/24", "149.154.160.0/20", "18.196.0.0/15", "91.108.16.0/22",
        "91.108.4.0/22", "91.108.56.0/22", "91.108.8.0/21",
    ]  # fmt: skip


def test_demo_plan() -> None:
    plan = plan_lab(load_scenario(DEMO))
    assert plan.cloud_hosts == {"telegram": "cl1", "aws-fra": "cl2", "gcp": "cl3", "yandex": "cl4"}
    # Every cloud's nginx serves every site (a service moves by DNS).
    assert [s.name for s in plan.sites] == [
        "telegram-web", "telegram-aws", "viber", "evernote", "yandex"
    ]  # fmt: skip
    assert plan.host_of == {"sub1": "i1s1", "sub2": "i1s2"}
    assert plan.address_of_host == {"sub1": "10.1.0.11", "sub2": "10.1.0.12"}
    assert [isp.name for isp in plan.topology.isps] == ["isp"], "one ISP: a campaign of one"
    assert plan.dns_records["www.viber.com"] == "18.197.25.40"
    assert plan.topology.dns_address == "77.88.8.8"
    assert plan.subscribers == ("sub1", "sub2")
    # Host names prefix interface names (15 characters at most).
    assert all(len(f"{h}-eth0") <= 15 for h in plan.cloud_hosts.values())


SERVICES = [
    ServiceSpec("tg", "target", 1, "149.154.167.99", "telegram"),
    ServiceSpec("viber", "innocent", 40, "18.197.25.40", "aws"),
    ServiceSpec("evernote", "innocent", 10, "35.190.4.12", "gcp"),
    ServiceSpec("yandex", "innocent", 50, "77.88.55.60", "yandex"),
]


def _r(service: str, ok: bool, outcome: str = "ok") -> dict[str, object]:
    role = next(s.role for s in SERVICES if s.name == service)
    return {"kind": "https", "service": service, "role": role, "ok": ok,
            "outcome": outcome if ok else "timeout"}  # fmt: skip


def test_summary_figures() -> None:
    results = [_r("tg", False), _r("tg", False), _r("viber", False), _r("viber", True),
               _r("viber", False), _r("evernote", True), _r("yandex", True), _r("yandex", False)]  # fmt: skip
    s = summarise("t", SERVICES, results, blocked_addresses=140_544, registry_prefixes=7,
                  in_registry={"149.154.167.99", "18.197.25.40"})  # fmt: skip
    by = {x.name: x for x in s.services}
    assert by["viber"].broken and by["viber"].reachability == pytest.approx(1 / 3)
    assert not by["yandex"].broken  # 1/2 is not below one half
    assert s.intended_blocking == 1.0
    assert s.collateral_damage == pytest.approx(1 / 3)
    assert s.collateral_damage_weighted == pytest.approx(40 / 100)
    assert s.overblocking_ratio == 140_544
    assert by["viber"].address_in_registry and not by["evernote"].address_in_registry


def test_service_without_probes_is_broken_not_divided_by_zero() -> None:
    s = summarise("t", SERVICES, [], blocked_addresses=0, registry_prefixes=0, in_registry=set())
    assert all(x.broken for x in s.services)


def test_parse_curl_output() -> None:
    body, info = parse_curl_output(
        'tspulab service viber\n{"http_code":200,"remote_ip":"18.197.25.40"}'
    )
    assert body == "tspulab service viber" and info["http_code"] == 200
    body, info = parse_curl_output("curl: (28) timeout")
    assert info == {}
