"""Timeline metrics from hand-written results lines: each rule checked on the smallest case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tspulab.metrics.summary import ServiceSpec
from tspulab.metrics.timeline import (
    build_timeline,
    format_duration,
    parse_clock_start,
    services_from_meta,
)

SERVICES = [
    ServiceSpec("tg", "target", 5, "149.154.167.99", "telegram"),
    ServiceSpec("viber", "innocent", 30, "18.197.25.40", "aws"),
    ServiceSpec("yandex", "innocent", 10, "77.88.55.60", "yandex"),
]
ROLE = {s.name: s.role for s in SERVICES}


def probe(service: str, ok: bool, t: float, step: str = "start", rnd: int = 1, isp: str = "a",
          method: str = "direct", kind: str = "https", **kw: Any) -> dict[str, Any]:  # fmt: skip
    return {"kind": kind, "service": service, "role": ROLE.get(service, "innocent"), "ok": ok,
            "outcome": "ok" if ok else "timeout", "isp": isp, "method": method, "round": rnd,
            "scenario_t_s": t, "step": step, "subscriber": f"{isp}-1", **kw}  # fmt: skip


def event(label: str, t: float) -> dict[str, Any]:
    return {"kind": "event", "label": label, "scenario_t_s": t, "what": [f"{label} happened"]}


def registry(isp: str, t: float, n: int, prefixes: int = 1) -> dict[str, Any]:
    return {"kind": "registry", "isp": isp, "scenario_t_s": t, "blocked_addresses": n,
            "prefixes": prefixes, "domains": 0}  # fmt: skip


def test_steps_come_from_events_and_labels_and_end_at_the_next_entry() -> None:
    records = [
        registry("a", 0, 0),
        probe("tg", True, 10),
        event("s1", 100),
        probe("tg", False, 110, step="s1", rnd=2),
        event("s2", 500),  # no probe yet in s2: it is still a step
    ]
    tl = build_timeline(records, SERVICES)
    assert [(b.key, b.start_s, b.end_s) for b in tl.steps] == [
        ("start", 0.0, 100.0), ("s1", 100.0, 500.0), ("s2", 500.0, None)
    ]  # fmt: skip
    assert [e.label for e in tl.events] == ["s1", "s2"]


def test_rounds_are_contiguous_runs_of_step_and_round_timed_by_their_first_probe() -> None:
    records = [
        probe("tg", True, 10, rnd=1), probe("viber", True, 12, rnd=1),
        probe("tg", True, 50, rnd=2), registry("a", 55, 3),
        probe("viber", True, 51, rnd=2),
        probe("tg", True, 200, step="s1", rnd=1),  # round numbers restart in a new step
    ]  # fmt: skip
    tl = build_timeline(records, SERVICES)
    assert [(b.key, b.start_s, b.step) for b in tl.rounds] == [
        ("1", 10.0, "start"), ("2", 50.0, "start"), ("3", 200.0, "s1")
    ]  # fmt: skip
    assert tl.rounds[0].end_s == 50.0 and tl.rounds[-1].end_s is None


def test_broken_is_summary_rule_and_unprobed_services_are_left_out() -> None:
    records = [
        probe("tg", False, 1), probe("tg", True, 2),  # 1/2: not broken (not below one half)
        probe("viber", True, 3), probe("viber", False, 4), probe("viber", False, 5),  # 1/3 broken
    ]  # fmt: skip
    tl = build_timeline(records, SERVICES)
    p = tl.point(tl.steps[0], "a")
    assert p is not None
    assert p.summary.intended_blocking == 0.0
    # yandex was never probed: the share is over viber alone, not counted broken
    assert [s.name for s in p.summary.services] == ["tg", "viber"]
    assert p.summary.collateral_damage == 1.0
    assert p.target_reachability == 0.5


def test_weighted_collateral_damage_uses_users() -> None:
    records = [probe("tg", False, 1), probe("viber", False, 2), probe("yandex", True, 3)]
    p = build_timeline(records, SERVICES).points[("step", "start", "a")]
    assert p.summary.collateral_damage == 0.5
    assert p.summary.collateral_damage_weighted == pytest.approx(30 / 40)
    assert p.metric("collateral_damage_weighted") == pytest.approx(0.75)


def test_circumvention_counts_target_probes_per_method_apart_from_direct() -> None:
    records = [
        probe("tg", False, 1),
        probe("tg", True, 2, method="socks"), probe("tg", True, 3, method="socks"),
        probe("tg", False, 4, method="vpn"),
        probe("viber", False, 5, method="vpn"),  # an innocent service via a method: not counted
    ]  # fmt: skip
    tl = build_timeline(records, SERVICES)
    p = tl.points[("step", "start", "a")]
    assert p.summary.intended_blocking == 1.0  # only the direct probe decides it
    assert p.circumvention_success("socks") == 1.0
    assert p.circumvention_success("vpn") == 0.0
    assert p.metric("circumvention_success", "nope") is None
    assert tl.methods == ["socks", "vpn"]
    assert tl.circumvention_table == {("socks", "tg"): (2, 2), ("vpn", "tg"): (0, 1)}


def test_blocked_addresses_in_effect_at_the_end_of_each_step_per_isp() -> None:
    records = [
        registry("a", 0, 0), registry("b", 0, 0),
        probe("tg", True, 1, isp="a"), probe("tg", True, 1, isp="b"),
        event("s1", 100),
        registry("a", 100, 9_472, 10),
        probe("tg", False, 110, "s1", 2, isp="a"),
        registry("b", 160, 9_472, 10),  # b's TSPU gets it an hour later
        event("s2", 200),
        registry("a", 200, 15_000_000, 74),
        probe("tg", False, 210, "s2", 3, isp="a"),
        probe("tg", False, 210, "s2", 3, isp="b"),
    ]  # fmt: skip
    tl = build_timeline(records, SERVICES)
    assert tl.isps == ["a", "b"]
    assert [v for _, v in tl.series("blocked_addresses", "a", "step")] == [0, 9_472, 15_000_000]
    assert [v for _, v in tl.series("blocked_addresses", "b", "step")] == [0, 9_472, 9_472]
    # per round: the line in effect before the round's end
    assert [v for _, v in tl.series("blocked_addresses", "b", "round")] == [0, 9_472, 9_472]
    p = tl.points[("step", "s2", "a")]
    assert p.summary.overblocking_ratio == 15_000_000  # one target address
    assert p.registry is not None and p.registry.prefixes == 74


def test_throughput_ttfb_and_degraded() -> None:
    records = [
        probe("viber", True, 1, time_starttransfer_s=0.05),
        probe("viber", True, 2, time_starttransfer_s=0.15),
        probe("viber", True, 3, time_starttransfer_s=0.10),
        probe("viber", True, 4, kind="transfer", speed_download_bps=50_000),  # 400 kbit/s
        probe("viber", False, 5, kind="transfer", speed_download_bps=999),  # failed: 0 kbit/s
        probe("yandex", True, 6, kind="transfer", speed_download_bps=1_000_000),
        probe("yandex", True, 7),
    ]  # fmt: skip
    p = build_timeline(records, SERVICES, degraded_below_kbps=1000).points[("step", "start", "a")]
    assert p.ttfb_s == pytest.approx(0.10)
    assert p.throughput_kbps == pytest.approx(400.0)  # median of 400, 0, 8000
    viber = p.service("viber")
    assert viber is not None and viber.degraded and not viber.broken
    assert p.summary.collateral_damage == 0.0 and p.summary.collateral_degraded == 0.5


def test_reachability_matrix_marks_unprobed_cells_none() -> None:
    records = [probe("tg", True, 1), probe("tg", False, 50, rnd=2), probe("viber", True, 51, rnd=2)]
    names, buckets, rows = build_timeline(records, SERVICES).reachability_matrix("a")
    assert names == ["tg", "viber", "yandex"] and len(buckets) == 2
    assert rows == [[1.0, 0.0], [None, 1.0], [None, None]]


def test_bad_lines_are_skipped_and_unknown_services_kept() -> None:
    records: list[Any] = [
        "not a dict", {"kind": "https"}, {"kind": "weird", "service": "x"},
        probe("newsvc", False, 1),  # not in run.json: an innocent service of 1 user
        {"kind": "https", "service": "tg", "role": "target", "ok": True},  # v1 line: no isp/time
    ]  # fmt: skip
    tl = build_timeline(records, SERVICES)
    assert tl.isps == ["a", "isp"]
    assert tl.points[("step", "start", "a")].summary.collateral_damage == 1.0
    assert tl.points[("step", "start", "isp")].summary.intended_blocking == 0.0


def test_meta_helpers_and_time_names() -> None:
    meta = {"services": [{"name": "tg", "role": "target", "address": "1.2.3.4"}, {"bad": 1}]}
    assert services_from_meta(meta) == [ServiceSpec("tg", "target", 1, "1.2.3.4", "")]
    start = parse_clock_start("2018-04-13T00:00:00Z")
    assert start == datetime(2018, 4, 13, tzinfo=UTC)
    assert parse_clock_start("yesterday") is None and parse_clock_start(None) is None
    assert (
        format_duration(0) == "+0s" and format_duration(3 * 86400 + 4 * 3600 + 90) == "+3d4h1m30s"
    )
    tl = build_timeline([], SERVICES, clock_start=start)
    assert tl.scenario_time(86400 * 3.5) == "2018-04-16 12:00"
    assert build_timeline([], SERVICES).scenario_time(7200) == "+2h"


def test_rounds_without_numbers_are_told_apart_by_their_probe_moment() -> None:
    """A runner that stamps every probe of a round with the round's time and no round number."""
    records = [probe("tg", True, 0, rnd=0), probe("viber", True, 0, rnd=0),
               probe("tg", True, 43200, rnd=0), probe("viber", False, 43200, rnd=0)]  # fmt: skip
    tl = build_timeline(records, SERVICES)
    assert [(b.start_s, b.end_s) for b in tl.rounds] == [(0.0, 43200.0), (43200.0, None)]
    assert [v for _, v in tl.series("collateral_damage", "a")] == [0.0, 1.0]
