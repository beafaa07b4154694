"""summary.json and the terminal table judge services by the timeline's rule (every kind that uses
the service, pooled; dns and ping per kind), carry the run's populations with Wilson intervals,
and the end-of-run bulk transfer measures a service the run's verdicts show reachable."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from tspulab.contracts import RESULTS_FILE
from tspulab.metrics.report import print_summary
from tspulab.metrics.summary import (
    ServiceSpec,
    SubscriberView,
    population_json,
    subscriber_views,
    summarise,
    wilson,
)
from tspulab.metrics.timeline import build_timeline
from tspulab.scenario.build import build_registry
from tspulab.scenario.runner import bulk_choice, summarise_run
from tspulab.scenario.schema import load_scenario

TELEGRAM_2018 = Path(__file__).resolve().parents[2] / "scenarios" / "telegram-2018.yaml"
SERVICES = [
    ServiceSpec("tg", "target", 1, "149.154.167.99", "telegram"),
    ServiceSpec("viber", "innocent", 40, "52.58.47.10", "aws"),
    ServiceSpec("yandex", "innocent", 50, "77.88.55.60", "yandex"),
]


def _p(service: str, kind: str, ok: bool, **more: Any) -> dict[str, Any]:
    role = next(s.role for s in SERVICES if s.name == service)
    return {
        "kind": kind, "service": service, "role": role, "ok": ok, "isp": "isp",
        "subscriber": "sub1", "method": "direct", "outcome": "ok" if ok else "timeout",
        "step": "start", "round": 1, "scenario_t_s": 0.0, **more,
    }  # fmt: skip


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    s = summarise("t", SERVICES, records, blocked_addresses=0, registry_prefixes=0,
                  in_registry=set())  # fmt: skip
    return {x.name: x for x in s.services}


def test_every_service_kind_counts_not_only_https() -> None:
    by = _summary(
        [_p("viber", "http", False), _p("viber", "http", False), _p("viber", "https", True)]
    )
    assert (by["viber"].ok, by["viber"].probes) == (1, 3)
    assert by["viber"].broken, "http failing twice of three: broken, as the timeline says"
    assert by["viber"].kinds == {"http": {"probes": 2, "ok": 0}, "https": {"probes": 1, "ok": 1}}


def test_ping_does_not_make_an_sni_blocked_site_half_reachable() -> None:
    by = _summary([_p("tg", "https", False), _p("tg", "ping", True)])
    assert by["tg"].broken and (by["tg"].ok, by["tg"].probes) == (0, 1)
    assert by["tg"].judged_by == ["https"]
    assert by["tg"].to_json()["kinds"]["ping"] == {"probes": 1, "ok": 1}


def test_path_kinds_judge_a_service_nothing_else_probed() -> None:
    by = _summary(
        [_p("yandex", "dns", True), _p("yandex", "ping", False), _p("yandex", "dns", True)]
    )
    assert by["yandex"].judged_by == ["dns", "ping"]
    assert (by["yandex"].ok, by["yandex"].probes) == (2, 3) and not by["yandex"].broken


def test_probes_through_a_method_are_not_the_service_verdict() -> None:
    by = _summary([_p("tg", "https", False), _p("tg", "https", True, method="vpn")])
    assert (by["tg"].ok, by["tg"].probes) == (0, 1)


def test_summary_and_timeline_agree_for_every_kind() -> None:
    records = [
        _p("tg", "https", False), _p("tg", "ping", True), _p("tg", "ping", True),
        _p("viber", "http", True), _p("viber", "ttfb", False), _p("viber", "dns", False),
        _p("yandex", "https", True), _p("yandex", "transfer", True, speed_download_bps=50_000),
    ]  # fmt: skip
    whole = _summary(records)
    tl = build_timeline(records, SERVICES)
    (point,) = [tl.point(b, "isp") for b in tl.steps]
    assert point is not None
    for name, s in whole.items():
        cell = point.service(name)
        assert cell is not None
        assert (cell.ok, cell.probes, cell.broken, cell.degraded, cell.kinds) == (
            s.ok, s.probes, s.broken, s.degraded, s.kinds
        ), name  # fmt: skip


def test_terminal_table_shows_each_kind_when_a_service_had_several() -> None:
    s = summarise("t", SERVICES, [_p("tg", "https", False), _p("tg", "ping", True)],
                  blocked_addresses=0, registry_prefixes=0, in_registry=set())  # fmt: skip
    out = io.StringIO()
    print_summary(s, Path("/run"), console=Console(file=out, width=200))
    assert "https 0/1" in out.getvalue() and "ping 1/1" in out.getvalue()


def _members(host: str, isp: str, broken: int, n: int = 10) -> list[dict[str, Any]]:
    return [
        {"kind": "https", "service": f"site-{i}", "role": "innocent", "ok": i >= broken,
         "isp": isp, "subscriber": host, "method": "direct", "outcome": "ok"}
        for i in range(n)
    ]  # fmt: skip


def test_population_figures_pooled_and_per_subscriber_with_wilson() -> None:
    specs = [
        ServiceSpec(f"site-{i}", "innocent", 1, f"10.9.0.{i}", "c", "small") for i in range(10)
    ]
    records = _members("a1", "a", 4) + _members("b1", "b", 0) + _members("b2", "b", 10)
    weights = {"a": {"a1": 5.0}, "b": {"b1": 3.0, "b2": 1.0}}
    views = subscriber_views(specs, records, weights)
    assert sorted(views) == ["a", "b"] and isinstance(views["b"], SubscriberView)
    whole = summarise("t", specs, records, blocked_addresses=0, registry_prefixes=0,
                      in_registry=set())  # fmt: skip
    got = population_json(whole, views)["small"]
    # pooled over both ISPs: site-i broken when fewer than half of its 4 probes reached it
    k = sum(1 for s in whole.services if s.broken)
    assert got["pooled"]["broken"] == k and got["pooled"]["n"] == 10
    assert got["pooled"]["wilson_95"] == [round(x, 4) for x in wilson(k, 10)]
    assert got["per_subscriber"]["a"]["broken"] == 4
    assert got["per_subscriber"]["b"]["broken"] == pytest.approx((3 * 0 + 1 * 10) / 4)
    low_b1, high_b1 = wilson(0, 10)
    low_b2, high_b2 = wilson(10, 10)
    assert got["per_subscriber"]["b"]["wilson_95"] == [
        round((3 * low_b1 + low_b2) / 4, 4), round((3 * high_b1 + high_b2) / 4, 4)
    ]  # fmt: skip
    assert got["all_subscribers"]["broken"] == pytest.approx((5 * 4 + 3 * 0 + 1 * 10) / 9, abs=1e-3)


def _round(t: float, rnd: int, ok: dict[str, bool], host: str = "sub1") -> list[dict[str, Any]]:
    return [
        _p(name, "https", good, round=rnd, scenario_t_s=t, step="s", subscriber=host)
        for name, good in ok.items()
    ]


def test_bulk_transfer_takes_a_service_reachable_at_the_end_not_once() -> None:
    records = _round(0, 1, {"tg": True, "viber": True, "yandex": False}) + _round(
        60, 2, {"tg": False, "viber": False, "yandex": True}
    )
    assert bulk_choice(records, SERVICES, "isp", ["sub1"]) == ("sub1", "yandex")


def test_bulk_transfer_prefers_innocent_then_any_reachable() -> None:
    records = _round(0, 1, {"tg": True, "viber": False, "yandex": False})
    assert bulk_choice(records, SERVICES, "isp", ["sub1"]) == ("sub1", "tg")


def test_bulk_transfer_says_why_when_nothing_is_reachable() -> None:
    records = _round(0, 1, {"tg": False, "viber": False, "yandex": False})
    why = bulk_choice(records, SERVICES, "isp", ["sub1"])
    assert isinstance(why, str)
    assert "no service reachable from isp" in why and "tg, viber, yandex" in why
    assert "no direct probe" in str(bulk_choice([], SERVICES, "isp", ["sub1"]))


def test_bulk_transfer_uses_the_subscriber_that_reaches_it() -> None:
    records = _round(0, 1, {"viber": False}, host="sub1") + _round(0, 1, {"viber": True}, "sub2")
    assert bulk_choice(records, SERVICES, "isp", ["sub1", "sub2"]) == ("sub2", "viber")


def test_summary_json_has_members_populations_and_kinds(tmp_path: Path) -> None:
    scenario = load_scenario(TELEGRAM_2018)
    members = [s for s in scenario.services if s.population == "small-sites"]
    isps = [isp.name for isp in scenario.isps]
    hosts = {isp: f"{isp}-sub" for isp in isps}
    lines = []
    for isp in isps:
        for i, s in enumerate(members):
            lines.append({
                "kind": "https", "service": s.name, "role": "innocent", "ok": i % 3 != 0,
                "isp": isp, "subscriber": hosts[isp], "method": "direct", "outcome": "ok",
            })  # fmt: skip
    (tmp_path / RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    live = SimpleNamespace(
        scenario=scenario, registry=build_registry(scenario), run_dir=tmp_path,
        meta=SimpleNamespace(isps=[SimpleNamespace(name=i, weights={hosts[i]: 2.0}) for i in isps]),
        address_of_host={h: f"10.0.0.{n}" for n, h in enumerate(hosts.values(), start=1)},
        addresses={s.name: str(s.address) for s in scenario.services},
    )  # fmt: skip
    summarise_run(live, {})  # type: ignore[arg-type]
    got = json.loads((tmp_path / "summary.json").read_text())
    assert {s["population"] for s in got["services"] if s["name"] in {m.name for m in members}} == {
        "small-sites"
    }
    pop = got["populations"]["small-sites"]
    broken = sum(1 for i in range(len(members)) if i % 3 == 0)
    assert pop["pooled"]["n"] == len(members) and pop["pooled"]["broken"] == broken
    assert sorted(pop["per_subscriber"]) == sorted(isps)
    low, high = wilson(broken, len(members))
    assert pop["all_subscribers"]["wilson_95"] == [round(low, 4), round(high, 4)]
    assert all(s["kinds"] == {"https": {"probes": len(isps), "ok": s["ok"]}}
               for s in got["services"] if s["name"] in {m.name for m in members})  # fmt: skip


def test_report_services_table_shows_each_kind_under_the_count() -> None:
    from tspulab.metrics.run_page import _services_table

    records = [_p("tg", "https", False), _p("tg", "ping", True), _p("viber", "https", True)]
    s = summarise("t", SERVICES, records, blocked_addresses=0, registry_prefixes=0,
                  in_registry=set())  # fmt: skip
    page = _services_table(json.loads(json.dumps(s.to_json())), build_timeline(records, SERVICES))
    assert "0/1<br>" in page and "https 0/1, ping 1/1" in page
    assert page.count('class="note"') == 1, "one kind: no per-kind line"
