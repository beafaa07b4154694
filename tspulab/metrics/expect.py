"""A scenario's `expect:` items checked against the campaign's timeline, and a JUnit XML file.

Two shapes (issue 7 contract), as plain dicts:

- **state**: `service` (or `role`: target | innocent), optional `isp` (default: every ISP),
  `method` (default direct), `state` (blocked | degraded | reachable), optional `from`/`until`.
  The states are exclusive: *blocked* = broken (fewer than half the probes succeeded),
  *degraded* = not broken but median goodput below the threshold, *reachable* = neither. With
  label bounds (or none) every step from `from` up to, not including, `until` must be in the state;
  with a time bound ("+3d", "2018-04-16T12:00:00Z") every probe round in [from, until) must.
- **metric**: `metric`, optional `isp` (each ISP must satisfy), `method` (circumvention_success
  only), `op`, `value`, optional `at` (a step label, or a time: the step containing it; without
  `at` every step that measured the metric must satisfy).

Each item gives one `ExpectationResult`, passed or failed with a message naming the observed and
expected values and where; an item that cannot be evaluated (unknown label, no measurements,
bad keys) fails with a message saying why rather than raising.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from tspulab.metrics.summary import DIRECT, SUBSCRIBER_METRICS, ServiceSummary
from tspulab.metrics.timeline import METRICS, Bucket, Timeline

STATES = ("blocked", "degraded", "reachable")
ROLES = ("target", "innocent")
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}  # fmt: skip
EXPECT_METRICS = (
    "intended_blocking",
    "collateral_damage",
    "collateral_damage_weighted",
    "collateral_degraded",
    "circumvention_success",
    "blocked_addresses",
    *SUBSCRIBER_METRICS,
)
_DURATION = re.compile(r"^\+?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


class ExpectationError(ValueError):
    """An expectation that cannot be evaluated as written."""


@dataclass(frozen=True)
class ExpectationResult:
    name: str
    passed: bool
    message: str
    item: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


def parse_time(value: object, clock_start: datetime | None) -> float:
    """Scenario seconds since the clock start of "+3d4h", "90s" or an ISO 8601 time."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        if clock_start is None:
            raise ExpectationError(f"absolute time {value.isoformat()} needs clock.start")
        return (value - clock_start).total_seconds()
    text = str(value).strip()
    m = _DURATION.match(text)
    if m and any(m.groups()):
        d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return d * 86400 + h * 3600 + mi * 60 + s
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExpectationError(
            f"{text!r} is neither a timeline label, a duration (+3d4h) nor an ISO 8601 time"
        ) from None
    if clock_start is None:
        raise ExpectationError(f"absolute time {text!r} needs clock.start")
    return (when - clock_start).total_seconds()


def _fmt(v: float | None, metric: str = "") -> str:
    if v is None:
        return "not measured"
    if metric == "blocked_addresses":
        return f"{v:,.0f}"
    return f"{v:.3g}"


def default_name(item: dict[str, Any]) -> str:
    isp = f" on {item['isp']}" if item.get("isp") else ""
    if "metric" in item:
        method = f" via {item['method']}" if item.get("method") else ""
        at = f" at {item['at']}" if item.get("at") is not None else " at every step"
        return f"{item['metric']}{method} {item.get('op', '?')} {item.get('value')}{isp}{at}"
    who = item.get("service") or f"every {item.get('role', '?')} service"
    method = item.get("method") or DIRECT
    via = "" if method == DIRECT else f" via {method}"
    window = "".join(f" {k} {item[k]}" for k in ("from", "until") if item.get(k) is not None)
    return f"{who}{via} {item.get('state', '?')}{isp}{window}"


def _isps(item: dict[str, Any], timeline: Timeline) -> list[str]:
    isp = item.get("isp")
    if isp is None:
        return timeline.isps
    if isp not in timeline.isps:
        raise ExpectationError(f"no results from ISP {isp!r} (ISPs: {', '.join(timeline.isps)})")
    return [str(isp)]


def _bound(value: object, timeline: Timeline, clock_start: datetime | None) -> tuple[float, bool]:
    """(scenario seconds, is a label) of a from/until/at bound."""
    if isinstance(value, str) and timeline.step(value) is not None:
        step = timeline.step(value)
        assert step is not None
        return step.start_s, True
    labels = ", ".join(b.key for b in timeline.steps)
    try:
        return parse_time(value, clock_start), False
    except ExpectationError as err:
        raise ExpectationError(f"{err} (timeline labels: {labels})") from None


def _window(item: dict[str, Any], timeline: Timeline, clock_start: datetime | None) -> list[Bucket]:
    lo, hi, labels = float("-inf"), float("inf"), True
    if item.get("from") is not None:
        lo, is_label = _bound(item["from"], timeline, clock_start)
        labels &= is_label
    if item.get("until") is not None:
        hi, is_label = _bound(item["until"], timeline, clock_start)
        labels &= is_label
    buckets = timeline.steps if labels else timeline.rounds
    return [b for b in buckets if lo <= b.start_s < hi]


def _state(cell: ServiceSummary) -> str:
    return "blocked" if cell.broken else "degraded" if cell.degraded else "reachable"


def _where(timeline: Timeline, bucket: Bucket) -> str:
    when = timeline.scenario_time(bucket.start_s)
    return f"step {bucket.key!r} ({when})" if bucket.kind == "step" else f"{bucket.label} ({when})"


def _check_state(
    item: dict[str, Any], timeline: Timeline, clock_start: datetime | None
) -> tuple[bool, str]:
    want = item.get("state")
    if want not in STATES:
        raise ExpectationError(f"state must be one of {', '.join(STATES)}, got {want!r}")
    method = str(item.get("method") or DIRECT)
    if item.get("service") is not None:
        names = [str(item["service"])]
        if not any(s.name == names[0] for s in timeline.services):
            raise ExpectationError(f"no results for service {names[0]!r}")
    elif item.get("role") in ROLES:
        names = [s.name for s in timeline.services if s.role == item["role"]]
    else:
        raise ExpectationError("needs `service` or `role` (target | innocent)")
    buckets = _window(item, timeline, clock_start)
    if not buckets:
        raise ExpectationError("no step or probe round falls in the from/until window")
    wrong: list[str] = []
    seen = 0
    for isp in _isps(item, timeline):
        for bucket in buckets:
            point = timeline.point(bucket, isp)
            if point is None:
                continue
            for name in names:
                if method == DIRECT:
                    cell = point.service(name)
                    if cell is None:
                        continue
                    got, detail = _state(cell), f"{cell.ok}/{cell.probes} probes ok"
                    if cell.goodput_kbps is not None:
                        detail += f", median goodput {cell.goodput_kbps:,.0f} kbit/s"
                else:
                    ok, tries = point.circumvention_tries(method, name)
                    if not tries:
                        continue
                    got = "blocked" if ok / tries < 0.5 else "reachable"
                    detail = f"{ok}/{tries} probes via {method} ok"
                seen += 1
                if got != want:
                    wrong.append(f"{name} on {isp} {got} in {_where(timeline, bucket)}: {detail}")
    if not seen:
        return False, f"expected {want}, but nothing matching was probed in the window"
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        return False, f"expected {want}; observed " + "; ".join(wrong[:3]) + more
    kind = "step" if buckets[0].kind == "step" else "probe round"
    return True, f"{want} in all {seen} measured (service, ISP, {kind}) cells"


def _check_metric(
    item: dict[str, Any], timeline: Timeline, clock_start: datetime | None
) -> tuple[bool, str]:
    metric = item.get("metric")
    if metric not in EXPECT_METRICS and metric not in METRICS:
        raise ExpectationError(f"unknown metric {metric!r}; known: {', '.join(EXPECT_METRICS)}")
    op = OPS.get(str(item.get("op")))
    if op is None:
        raise ExpectationError(f"op must be one of {' '.join(OPS)}, got {item.get('op')!r}")
    value = item.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ExpectationError(f"value must be a number, got {value!r}")
    method = item.get("method")
    if metric == "circumvention_success" and not method:
        raise ExpectationError("circumvention_success needs `method`")
    if item.get("at") is not None:
        t, is_label = _bound(item["at"], timeline, clock_start)
        step = timeline.step(str(item["at"])) if is_label else timeline.step_at(t)
        if step is None:
            raise ExpectationError(f"no step covers {item['at']!r}")
        steps = [step]
    else:
        steps = timeline.steps
    failures: list[str] = []
    passes: list[str] = []
    for isp in _isps(item, timeline):
        for step in steps:
            point = timeline.point(step, isp)
            got = point.metric(str(metric), method) if point else None
            if got is None:
                if item.get("at") is not None:
                    failures.append(f"{isp}: not measured in {_where(timeline, step)}")
                continue
            text = f"{isp} {_fmt(got, str(metric))} in {_where(timeline, step)}"
            (passes if op(got, float(value)) else failures).append(text)
    want = f"{metric} {item['op']} {_fmt(float(value), str(metric))}"
    if failures:
        return False, f"expected {want}; observed " + "; ".join(failures)
    if not passes:
        return False, f"expected {want}, but it was never measured"
    return True, f"{want}: " + "; ".join(passes)


def evaluate(
    expect: list[dict[str, Any]], timeline: Timeline, clock_start: datetime | None = None
) -> list[ExpectationResult]:
    """One result per item, in order."""
    clock_start = clock_start or timeline.clock_start
    out = []
    for raw in expect:
        # model_dump() without by_alias spells `from` as `from_`: accept both.
        item = {("from" if k == "from_" else k): v for k, v in dict(raw).items() if v is not None}
        name = str(item.get("name") or default_name(item))
        try:
            if "metric" in item:
                passed, message = _check_metric(item, timeline, clock_start)
            elif "state" in item:
                passed, message = _check_state(item, timeline, clock_start)
            else:
                raise ExpectationError("needs `state` (with service/role) or `metric`")
        except ExpectationError as err:
            passed, message = False, f"cannot evaluate: {err}"
        out.append(ExpectationResult(name, passed, message, item))
    return out


def write_junit(results: list[ExpectationResult], path: Path, suite: str = "tspulab") -> Path:
    """JUnit XML: one test case per expectation, failures carrying the message."""
    failures = sum(not r.passed for r in results)
    root = ET.Element("testsuites", tests=str(len(results)), failures=str(failures))
    ts = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(results)), failures=str(failures), errors="0"
    )
    for r in results:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.expect", name=r.name)
        if r.passed:
            ET.SubElement(case, "system-out").text = r.message
        else:
            ET.SubElement(
                case, "failure", message=r.message, type="ExpectationFailed"
            ).text = r.message
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    return path
