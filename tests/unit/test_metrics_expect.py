"""`expect:` items evaluated against a timeline: verdicts, messages, bad items, JUnit XML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from tests.unit.test_metrics_timeline import SERVICES, event, probe, registry
from tspulab.metrics.expect import ExpectationError, evaluate, parse_time, write_junit
from tspulab.metrics.timeline import Timeline, build_timeline

START = datetime(2018, 4, 13, tzinfo=UTC)
DAY = 86400.0


def _timeline() -> Timeline:
    """Two ISPs; at +3d 'block' lists the target; ISP b's TSPU gets it 12 h late; at +4d 'cloud'
    breaks viber on a; a socks method works throughout."""
    r: list[dict[str, Any]] = [registry("a", 0, 0), registry("b", 0, 0)]
    for rnd, t in enumerate((0.0, 0.5 * DAY), start=1):
        for isp in "ab":
            r += [probe(s, True, t, "start", rnd, isp) for s in ("tg", "viber", "yandex")]
    r += [event("block", 3 * DAY), registry("a", 3 * DAY, 9_472)]
    r += [probe("tg", False, 3 * DAY, "block", 3, "a"), probe("tg", True, 3 * DAY, "block", 3, "b")]
    r += [probe(s, True, 3 * DAY, "block", 3, i) for s in ("viber", "yandex") for i in "ab"]
    r += [probe("tg", True, 3 * DAY + 1, "block", 3, i, method="socks") for i in "ab"]
    r += [registry("b", 3.5 * DAY, 9_472)]
    r += [probe("tg", False, 3.5 * DAY, "block", 4, i) for i in "ab"]
    r += [probe(s, True, 3.5 * DAY, "block", 4, i) for s in ("viber", "yandex") for i in "ab"]
    r += [
        event("cloud", 4 * DAY),
        registry("a", 4 * DAY, 2_000_000),
        registry("b", 4 * DAY, 2_000_000),
    ]
    r += [probe("tg", False, 4 * DAY, "cloud", 5, i) for i in "ab"]
    r += [
        probe("viber", False, 4 * DAY, "cloud", 5, "a"),
        probe("viber", True, 4 * DAY, "cloud", 5, "b"),
    ]
    r += [probe("yandex", True, 4 * DAY, "cloud", 5, i) for i in "ab"]
    r += [probe("tg", i == "a", 4 * DAY + 1, "cloud", 5, i, method="socks") for i in "ab"]
    return build_timeline(r, SERVICES, clock_start=START)


def _one(item: dict[str, Any]) -> tuple[bool, str]:
    (result,) = evaluate([item], _timeline())
    return result.passed, result.message


def test_state_blocked_from_a_label_fails_where_an_isp_lags_and_says_where() -> None:
    ok, msg = _one({"service": "tg", "state": "blocked", "from": "block"})
    assert not ok
    # step 'block' on b: 1 of 2 probes ok -> not broken; the message names ISP, step and time
    assert "tg on b reachable in step 'block' (2018-04-16 00:00): 1/2 probes ok" in msg
    assert _one({"service": "tg", "state": "blocked", "from": "block", "isp": "a"})[0]
    assert _one({"service": "tg", "state": "blocked", "from": "cloud"})[0]


def test_state_with_time_bounds_uses_probe_rounds() -> None:
    # rounds from +3d12h on: b is blocked too
    ok, msg = _one({"service": "tg", "state": "blocked", "from": "+3d12h"})
    assert ok and "probe round" in msg
    ok, msg = _one({"service": "tg", "state": "blocked", "from": "2018-04-16T00:00:00Z",
                    "until": "+3d12h"})  # fmt: skip
    assert not ok and "round 3 (2018-04-16 00:00)" in msg
    assert _one({"service": "tg", "state": "reachable", "until": "block"})[0]


def test_state_by_role_and_degraded_and_circumvention() -> None:
    ok, msg = _one({"role": "innocent", "state": "reachable"})
    assert not ok and "viber on a blocked in step 'cloud'" in msg
    assert _one({"role": "innocent", "state": "reachable", "isp": "b"})[0]
    ok, msg = _one({"service": "yandex", "state": "degraded"})
    assert not ok and "expected degraded" in msg
    assert _one({"service": "tg", "method": "socks", "state": "reachable", "isp": "a"})[0]
    ok, msg = _one({"service": "tg", "method": "socks", "state": "reachable", "from": "cloud"})
    assert not ok and "0/1 probes via socks ok" in msg


def test_metric_at_a_label_a_time_and_every_step() -> None:
    ok, msg = _one(
        {"metric": "collateral_damage", "op": ">=", "value": 0.5, "at": "cloud", "isp": "a"}
    )
    assert ok and "a 0.5 in step 'cloud'" in msg
    ok, msg = _one({"metric": "collateral_damage", "op": ">=", "value": 0.5, "at": "cloud"})
    assert not ok and "b 0 in step 'cloud'" in msg
    # a time picks the step that contains it
    assert _one({"metric": "intended_blocking", "op": "==", "value": 1, "at": "+4d6h"})[0]
    # without `at`, every step must satisfy it
    ok, msg = _one({"metric": "intended_blocking", "op": "<", "value": 1})
    assert not ok and "'start'" not in msg and "'cloud'" in msg
    ok, msg = _one({"metric": "blocked_addresses", "op": ">=", "value": 1e6, "at": "cloud"})
    assert ok and "2,000,000" in msg
    ok, msg = _one({"metric": "blocked_addresses", "op": ">", "value": 0, "at": "block"})
    assert ok  # b's registry line arrived within the step, so it is in effect at its end
    assert _one({"metric": "circumvention_success", "method": "socks", "op": ">=", "value": 1,
                 "at": "block"})[0]  # fmt: skip
    ok, msg = _one({"metric": "circumvention_success", "method": "socks", "op": ">=", "value": 1,
                    "at": "start"})  # fmt: skip
    assert not ok and "not measured" in msg


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"service": "nope", "state": "blocked"}, "no results for service 'nope'"),
        ({"service": "tg", "state": "gone"}, "state must be one of"),
        ({"state": "blocked"}, "needs `service` or `role`"),
        (
            {"service": "tg", "state": "blocked", "from": "stage 9"},
            "timeline labels: start, block, cloud",
        ),
        ({"service": "tg", "state": "blocked", "isp": "zz"}, "no results from ISP 'zz'"),
        ({"service": "tg", "state": "blocked", "from": "+30d"}, "no step or probe round"),
        ({"metric": "happiness", "op": ">=", "value": 1}, "unknown metric 'happiness'"),
        ({"metric": "collateral_damage", "op": "=>", "value": 1}, "op must be one of"),
        ({"metric": "collateral_damage", "op": ">=", "value": "x"}, "value must be a number"),
        ({"metric": "circumvention_success", "op": ">=", "value": 1}, "needs `method`"),
        ({"foo": 1}, "needs `state`"),
    ],
)
def test_items_that_cannot_be_evaluated_fail_with_a_reason(item: dict[str, Any], says: str) -> None:
    ok, msg = _one(item)
    assert not ok and msg.startswith("cannot evaluate: ") and says in msg


def test_model_dump_shapes_are_accepted() -> None:
    """Scenario.expect items dumped by pydantic: `from_`, datetimes, None fields, a name."""
    item = {"service": "tg", "role": None, "metric": None, "isp": "a", "method": "direct",
            "state": "blocked", "from_": datetime(2018, 4, 16, tzinfo=UTC), "until": None,
            "op": None, "value": None, "at": None, "name": "telegram blocked on a"}  # fmt: skip
    (r,) = evaluate([item], _timeline())
    assert r.passed and r.name == "telegram blocked on a"


def test_default_names() -> None:
    results = evaluate(
        [{"service": "tg", "state": "blocked", "from": "block", "isp": "a"},
         {"metric": "collateral_damage", "op": "<=", "value": 0.2, "at": "start"}],
        _timeline(),
    )  # fmt: skip
    assert [r.name for r in results] == [
        "tg blocked on a from block", "collateral_damage <= 0.2 at start"
    ]  # fmt: skip


def test_parse_time() -> None:
    assert parse_time("+3d4h30m", None) == 3 * DAY + 4 * 3600 + 1800
    assert parse_time("90s", None) == 90 and parse_time("0s", None) == 0
    assert parse_time("2018-04-16T12:00:00Z", START) == 3.5 * DAY
    with pytest.raises(ExpectationError, match=r"needs clock\.start"):
        parse_time("2018-04-16T12:00:00Z", None)
    with pytest.raises(ExpectationError, match="neither"):
        parse_time("soon", START)


def test_junit_xml(tmp_path: Path) -> None:
    results = evaluate(
        [{"service": "tg", "state": "blocked", "from": "cloud"},
         {"service": "tg", "state": "reachable", "from": "cloud", "name": "tg <reachable> & ok"}],
        _timeline(),
    )  # fmt: skip
    path = write_junit(results, tmp_path / "junit.xml", "campaign")
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["tg blocked from cloud", "tg <reachable> & ok"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and "expected reachable; observed tg on a blocked" in (
        failure.get("message") or ""
    )
