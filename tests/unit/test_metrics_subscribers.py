"""Subscriber-weighted metrics and populations (tspulab.metrics.summary / timeline / expect).

The case the binary view hides: an ISP whose TSPU covers half of its subscribers. Pooled over
both subscribers, the target answers half of the probes, so it is "not broken" (the 50 % rule) and
the ISP shows 0 % blocked and 0 % collateral, while the subscriber behind the TSPU loses the
target and every innocent service in the blocked cloud.
"""

from __future__ import annotations

from typing import Any

import pytest

from tspulab.metrics.expect import evaluate
from tspulab.metrics.summary import ServiceSpec, ServiceSummary, SubscriberView, Summary, wilson
from tspulab.metrics.timeline import build_timeline
from tspulab.scenario.model import Isp  # the model completes Isp (its forward references)

SERVICES = [
    ServiceSpec("telegram", "target", 100, "18.196.1.1", "aws"),
    ServiceSpec("viber", "innocent", 60, "18.196.1.2", "aws"),
    ServiceSpec("yandex", "innocent", 90, "77.88.55.60", "yandex"),
    # a population of 10 small sites: 4 in the blocked cloud
    *[
        ServiceSpec(f"site-{i}", "innocent", 1, f"18.196.2.{i}", "aws", "small-sites")
        for i in range(4)
    ],
    *[
        ServiceSpec(f"site-{i}", "innocent", 1, f"88.198.2.{i}", "hetzner", "small-sites")
        for i in range(4, 10)
    ],
]
BLOCKED = {"telegram", "viber", "site-0", "site-1", "site-2", "site-3"}


def _records(hosts: dict[str, tuple[str, bool]], rounds: int = 2) -> list[dict[str, Any]]:
    """Probe lines: host -> (isp, behind the TSPU); everything in BLOCKED fails behind it."""
    out = []
    for n in range(1, rounds + 1):
        for host, (isp, covered) in hosts.items():
            for s in SERVICES:
                ok = not (covered and s.name in BLOCKED)
                out.append(
                    {
                        "kind": "https", "subscriber": host, "service": s.name, "role": s.role,
                        "ok": ok, "outcome": "ok" if ok else "timeout", "isp": isp,
                        "method": "direct", "scenario_t_s": 3600.0 * n, "step": "blocked",
                        "round": n,
                    }
                )  # fmt: skip
    return out


HOSTS = {
    "rt-1": ("rostelecom", True),
    "dom-1": ("dom-ru", False),  # bypasses the TSPU (coverage 0.5)
    "dom-2": ("dom-ru", True),
}


def _timeline(weights: dict[str, dict[str, float]] | None = None) -> Any:
    return build_timeline(_records(HOSTS), SERVICES, weights=weights)


def test_half_coverage_is_half_the_damage_not_zero() -> None:
    tl = _timeline()
    step = tl.step("blocked")
    assert step is not None
    dom = tl.point(step, "dom-ru")
    assert dom is not None
    # The binary view: pooled, 1 of 2 probes per round succeed -> not broken -> 0 %.
    assert dom.metric("intended_blocking") == 0.0
    assert dom.metric("collateral_damage") == 0.0
    # Per subscriber: one of two subscribers loses telegram and viber (1 of 2 named innocents).
    assert dom.metric("intended_blocking_subscribers") == pytest.approx(0.5)
    assert dom.metric("collateral_damage_subscribers") == pytest.approx(0.25)
    assert dom.metric("subscribers_hit") == pytest.approx(0.5)
    assert dom.metric("population_damage") == pytest.approx(0.2)  # (4/10 + 0) / 2
    rt = tl.point(step, "rostelecom")
    assert rt is not None
    assert rt.metric("intended_blocking_subscribers") == rt.metric("intended_blocking") == 1.0
    assert rt.metric("collateral_damage_subscribers") == rt.metric("collateral_damage") == 0.5


def test_weights_come_from_customers_split_by_coverage() -> None:
    isp = Isp(name="dom-ru", subscribers=2, coverage=0.3, customers=1000)
    weights = isp.host_weights(("dom-ru-1", "dom-ru-2"))
    assert isp.uncovered_hosts(("dom-ru-1", "dom-ru-2")) == ("dom-ru-1",)
    assert weights == pytest.approx({"dom-ru-1": 700.0, "dom-ru-2": 300.0})
    # Default: one per host; full coverage: equal shares.
    assert Isp(name="mts", subscribers=3).host_weights(("a", "b", "c")) == {
        "a": 1.0, "b": 1.0, "c": 1.0,
    }  # fmt: skip
    # A side without a host cannot be measured: the hosts there are take it all.
    lone = Isp(name="x", subscribers=2, coverage=0.9, customers=10)
    assert lone.host_weights(("x-1", "x-2")) == {"x-1": 5.0, "x-2": 5.0}
    tl = _timeline({"dom-ru": {"dom-1": 700.0, "dom-2": 300.0}})
    step = tl.step("blocked")
    assert step is not None
    dom = tl.point(step, "dom-ru")
    assert dom is not None
    assert dom.metric("intended_blocking_subscribers") == pytest.approx(0.3)


def test_population_counts_apart_from_named_services_with_an_interval() -> None:
    tl = _timeline()
    step = tl.step("blocked")
    assert step is not None
    rt = tl.point(step, "rostelecom")
    assert rt is not None
    # Named innocent services only: viber broken, yandex not; the sites do not dilute it.
    assert rt.summary.collateral_damage == 0.5
    fig = rt.subscribers.population("small-sites")
    assert fig is not None
    assert (fig.broken, fig.n) == (4, 10)
    lo, hi = wilson(4, 10)
    assert (fig.low, fig.high) == pytest.approx((lo, hi))
    assert 0.16 < lo < 0.17 and 0.68 < hi < 0.69  # Wilson 95 % for 4/10
    assert tl.populations() == ["small-sites"]
    every = tl.overall(step).population()
    assert every is not None
    assert every.share == pytest.approx((0.4 + 0.0 + 0.4) / 3)


def test_wilson_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 60)
    assert lo == 0.0 and 0.05 < hi < 0.07
    lo, hi = wilson(60, 60)
    assert hi == 1.0 and 0.93 < lo < 0.95


def test_subscriber_view_ignores_hosts_without_weight() -> None:
    s = Summary("x", [ServiceSummary("t", "target", 1, "", "", probes=1, ok=0)], 0, 0, 1)
    view = SubscriberView({"a": s, "b": s}, {"a": 0.0, "b": 2.0})
    assert view.intended_blocking == 1.0
    assert SubscriberView({}).intended_blocking is None


def test_expectations_on_subscriber_metrics() -> None:
    tl = _timeline()
    items: list[dict[str, Any]] = [
        {"metric": "intended_blocking_subscribers", "isp": "dom-ru", "op": ">=", "value": 0.5,
         "at": "blocked"},
        {"metric": "collateral_damage_subscribers", "op": ">", "value": 0.2, "at": "blocked"},
        {"metric": "population_damage", "isp": "rostelecom", "op": "==", "value": 0.4},
        {"metric": "subscribers_hit", "isp": "dom-ru", "op": ">=", "value": 0.9},
    ]  # fmt: skip
    results = evaluate(items, tl)
    assert [r.passed for r in results] == [True, True, True, False], [r.message for r in results]
    assert "dom-ru 0.5" in results[3].message


def test_terminal_summary_ends_with_the_per_subscriber_figures(tmp_path: Any) -> None:
    from rich.console import Console

    from tspulab.metrics.report import print_summary
    from tspulab.metrics.summary import summarise

    records = _records(HOSTS)
    summary = summarise(
        "x", SERVICES, records, blocked_addresses=1, registry_prefixes=1, in_registry=set()
    )
    console = Console(record=True, width=200)
    print_summary(summary, tmp_path, console, timeline=_timeline())
    text = console.export_text()
    assert "probes of every ISP pooled (binary view)" in text
    assert "dom-ru at 'blocked': targets blocked for 50.0 % of subscribers" in text
    assert "small-sites 2 of 10 broken" in text


def test_whole_run_table_folds_a_population_into_one_row() -> None:
    from tspulab.metrics.population_page import fold_members

    services = [
        {"name": "viber", "role": "innocent", "cloud": "aws", "ok": 0, "probes": 2,
         "broken": True, "outcomes": {"timeout": 2}},
        *[
            {"name": f"site-{i}", "role": "innocent", "cloud": "aws" if i < 3 else "hetzner",
             "ok": 0 if i < 2 else 2, "probes": 2, "broken": i < 2, "address_in_registry": i < 2,
             "outcomes": {"timeout": 2} if i < 2 else {"ok": 2}}
            for i in range(5)
        ],
    ]  # fmt: skip
    rows = fold_members(services, {f"site-{i}": "small-sites" for i in range(5)})
    assert [r["name"] for r in rows] == ["viber", "small-sites (5 members)"]
    folded = rows[1]
    assert folded["verdict"] == "2 of 5 broken" and folded["address_in_registry"] == "2 of 5"
    assert (folded["ok"], folded["probes"]) == (6, 10)
    assert folded["outcomes"] == {"timeout": 4, "ok": 6}
    assert folded["cloud"] == "aws 3, hetzner 2"
