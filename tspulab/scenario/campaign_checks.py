"""Checks that relate the campaign sections to the rest of a scenario, each at its exact line.

The models check each mapping on its own; here the references between sections are followed:
ISP, service, cloud, circumvention and label names exist; addresses lie in their cloud and are
not shared; times resolve and run forward; circumvention methods are started before they are
stopped; expectations have a well-formed shape; profile_sets name sets the profile has.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tspulab.dpi.profile import ProfileError, load_profile
from tspulab.dpi.yamlload import ErrorLocation, Loc, YamlDocument, listed
from tspulab.scenario.campaign import DIRECT, SHARE_METRICS, Circumvention, Expectation
from tspulab.scenario.check_context import (
    Context,
    check_lab_addresses,
    check_profile_sets,
    check_registry_sources,
    default_label,
    make_context,
    valid,
    valid_items,
)
from tspulab.scenario.model import Probes, TimelineEntry
from tspulab.scenario.oldfilter_checks import check_old_filters
from tspulab.scenario.scalars import (
    format_duration,
    is_relative_time,
    known_profiles,
    time_offset_s,
)

MAX_PROBE_TIMES = 10_000
"""More probe times than this is a mistake (every: 1s over days), not a campaign."""


def _present(model: BaseModel) -> set[str]:
    """YAML keys the file gave a value: an explicit `key: null` counts as left out (the models
    accept null for optional keys, and a metric with `op: null` cannot be compared at run time).
    """
    return {
        (info.alias or name)
        for name, info in type(model).model_fields.items()
        if name in model.model_fields_set and getattr(model, name) is not None
    }


def _missing(model: BaseModel, key: str) -> str:
    """'missing required key 'op'' or, for `op: null`, ''op' is empty'."""
    fields = {(info.alias or name): name for name, info in type(model).model_fields.items()}
    return (
        f"'{key}' is empty"
        if fields.get(key, key) in model.model_fields_set
        else f"missing required key '{key}'"
    )


def _shown(value: str | datetime) -> str:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _check_isps(ctx: Context) -> Iterator[ErrorLocation]:
    doc = ctx.doc
    for i, isp in ctx.isps:
        first = ctx.isp_names.known[isp.name]
        if first != i:
            line = doc.line_of(("isps", first))
            yield doc.error(
                ("isps", i, "name"), f"duplicate ISP name '{isp.name}' (first at line {line})"
            )
    topology = ctx.data.get("topology")
    isps = ctx.data.get("isps")
    if (
        isinstance(topology, dict)
        and topology.get("name") == "single-isp"
        and isinstance(isps, list)
        and len(isps) > 1
    ):
        yield doc.error(
            ("topology", "name"),
            f"single-isp has one ISP, this file has {len(isps)}: use 'isps' (the same topology "
            "with one TSPU per ISP around an exchange)",
        )
    if "isps" in ctx.data and isinstance(topology, dict) and "subscribers" in topology:
        yield doc.error(
            ("topology", "subscribers"),
            "not used when 'isps' is given: each ISP has its own 'subscribers'",
        )
    known = known_profiles()
    if ctx.profile in known and isinstance(ctx.data.get("profile_sets"), dict):
        sets = _valid_sets(ctx.data["profile_sets"])
        yield from _check_sets(ctx, ("profile_sets",), ctx.profile, None, sets)
    for i, isp in ctx.isps:
        profile = isp.profile or ctx.profile
        if isp.profile_sets is not None and profile in known:
            yield from _check_sets(
                ctx, ("isps", i, "profile_sets"), profile, isp.name, isp.profile_sets
            )


def _check_sets(
    ctx: Context, where: Loc, profile: str, isp: str | None, sets: dict[str, tuple[str, ...]]
) -> Iterator[ErrorLocation]:
    """Each set must belong to the ISP's profile or to one the timeline switches it to (the
    controller fills a profile changed at run time with the sets it has)."""
    later = [
        entry.profile.name
        for _, entry in valid_items(TimelineEntry, ctx.data.get("timeline"))
        if entry.profile is not None and (isp is None or entry.profile.isp in (None, isp))
    ]
    for name, entries in sets.items():
        owner = next((p for p in [profile, *later] if _has_set(p, name)), profile)
        yield from check_profile_sets(ctx.doc, where, owner, {name: entries})


def _has_set(profile: str, name: str) -> bool:
    try:
        return name in load_profile(profile).sets
    except ProfileError:
        return False


def _valid_sets(raw: dict[Any, Any]) -> dict[str, tuple[str, ...]]:
    return {
        k: tuple(v)
        for k, v in raw.items()
        if isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
    }


def _check_circumvention(ctx: Context) -> Iterator[ErrorLocation]:
    doc = ctx.doc
    for i, method in valid_items(Circumvention, ctx.data.get("circumvention")):
        loc: Loc = ("circumvention", i)
        first = ctx.methods.known[method.name]
        if method.name == DIRECT:
            yield doc.error(
                (*loc, "name"), "'direct' is reserved: it names traffic without circumvention"
            )
        elif first != i:
            line = doc.line_of(("circumvention", first))
            yield doc.error(
                (*loc, "name"),
                f"duplicate circumvention name '{method.name}' (first at line {line})",
            )
        given = _present(method)
        if method.kind == "direct":
            for key in sorted(given & {"cloud", "address", "port"}):
                yield doc.error((*loc, key), f"'{key}' does not apply to kind direct")
            continue
        missing = [k for k in ("cloud", "address") if k not in given]
        for key in missing:
            yield doc.error(
                loc, f"{_missing(method, key)} (a {method.kind} server lives in a cloud)"
            )
        if method.cloud is not None and method.address is not None:
            yield from ctx.place(
                loc, f"circumvention '{method.name}'", method.cloud, method.address
            )
        for key, names in (("subscribers", ctx.hosts), ("services", ctx.services)):
            for k, value in enumerate(getattr(method, key) or ()):
                yield from ctx.unknown(names, (*loc, key, k), value)


def _check_timeline(ctx: Context) -> Iterator[ErrorLocation]:
    doc, start = ctx.doc, ctx.start()
    raw = ctx.data.get("timeline")
    previous: tuple[float, int] | None = None
    labels: dict[str, int] = {}
    active: dict[str, int] = {}
    for i, entry in valid_items(TimelineEntry, raw):
        loc: Loc = ("timeline", i)
        at_s = time_offset_s(entry.at, start)
        if isinstance(entry.at, datetime) and ctx.clock is not None:
            if start is None:
                yield doc.error(
                    (*loc, "at"),
                    f"the absolute time {_shown(entry.at)} needs clock.start; "
                    "or write a time after the start, e.g. '+3d'",
                )
            elif at_s is not None and at_s < 0:
                yield doc.error(
                    (*loc, "at"), f"{_shown(entry.at)} is before clock.start ({_shown(start)})"
                )
        if at_s is not None and previous is not None and at_s < previous[0]:
            yield doc.error(
                (*loc, "at"),
                f"{_shown(entry.at)} is before the previous entry "
                f"(line {doc.line_of(('timeline', previous[1]))}, "
                f"t+{format_duration(previous[0])}): entries are ordered by time",
            )
        if at_s is not None:
            previous = (at_s, i)
        label = entry.label or default_label(entry, at_s)
        if label in labels:
            first = doc.line_of(("timeline", labels[label]))
            if entry.label is not None:
                yield doc.error(
                    (*loc, "label"), f"duplicate label '{label}' (first at line {first})"
                )
            else:
                yield doc.error(
                    loc,
                    f"this entry's default label '{label}' is taken (line {first}); "
                    "give it a 'label'",
                )
        labels.setdefault(label, i)
        item = raw[i] if isinstance(raw, list) else {}
        for key in ("registry_add", "registry_remove"):
            yield from check_registry_sources(doc, (*loc, key), item.get(key), ctx.path)
        if entry.profile is not None and entry.profile.isp is not None:
            yield from ctx.unknown(ctx.isp_names, (*loc, "profile", "isp"), entry.profile.isp)
        if entry.move_service is not None:
            move = entry.move_service
            yield from ctx.unknown(ctx.services, (*loc, "move_service", "service"), move.service)
            owner = f"service '{move.service}'"
            yield from ctx.place((*loc, "move_service"), owner, move.cloud, move.address)
        if entry.circumvention is not None:
            yield from _check_switches(
                ctx,
                (*loc, "circumvention"),
                entry.circumvention.start,
                entry.circumvention.stop,
                active,
            )


def _check_switches(
    ctx: Context, loc: Loc, start: tuple[str, ...], stop: tuple[str, ...], active: dict[str, int]
) -> Iterator[ErrorLocation]:
    """Methods started and stopped in order: none stopped unless in use, none started twice."""
    doc = ctx.doc
    for key, names in (("stop", stop), ("start", start)):
        for k, name in enumerate(names):
            where = (*loc, key, k)
            if name == DIRECT:
                yield doc.error(where, "'direct' needs no starting or stopping: it is always there")
                continue
            message = ctx.methods.unknown(name)
            if message is not None:
                yield doc.error(where, message)
                continue
            if key == "stop" and name not in active:
                in_use = listed(active) or "none"
                yield doc.error(where, f"'{name}' is not in use at this point (in use: {in_use})")
            elif key == "start" and name in active:
                yield doc.error(
                    where, f"'{name}' is already in use (started at line {active[name]})"
                )
            if key == "stop":
                active.pop(name, None)
            else:
                active.setdefault(name, doc.line_of(where))


def _check_probes(ctx: Context) -> Iterator[ErrorLocation]:
    doc = ctx.doc
    probes = valid(Probes, ctx.data.get("probes", {}))
    if probes is None:
        return
    every = probes.every_s
    if every == 0:
        yield doc.error(("probes", "every"), "must be longer than 0s")
    elif every is not None:
        last = max((t for t in ctx.label_at.values() if t is not None), default=0.0)
        rounds = int((last + every) // every) + 1
        if rounds > MAX_PROBE_TIMES:
            yield doc.error(
                ("probes", "every"),
                f"every {probes.every} until t+{format_duration(last + every)} makes {rounds} "
                f"probe times (at most {MAX_PROBE_TIMES}); probe less often",
            )
    for key, values in (("kinds", probes.kinds), ("from", probes.from_)):
        if isinstance(values, str):
            continue
        seen: set[str] = set()
        for k, value in enumerate(values):
            if value in seen:
                yield doc.error(("probes", key, k), f"'{value}' is listed twice")
            elif key == "from":
                yield from ctx.unknown(ctx.hosts, ("probes", key, k), value)
            seen.add(value)


def _check_expectations(ctx: Context) -> Iterator[ErrorLocation]:
    names: dict[str, int] = {}
    for i, exp in valid_items(Expectation, ctx.data.get("expect")):
        loc: Loc = ("expect", i)
        errors = list(_check_expectation(ctx, loc, exp))
        yield from errors
        name = exp.name or exp.default_name()
        if name in names and not errors:
            first = ctx.doc.line_of(("expect", names[name]))
            where = (*loc, "name") if exp.name else loc
            yield ctx.doc.error(where, f"duplicate expectation '{name}' (first at line {first})")
        names.setdefault(name, i)


def _check_expectation(ctx: Context, loc: Loc, exp: Expectation) -> Iterator[ErrorLocation]:
    doc = ctx.doc
    given = _present(exp)
    subjects = [k for k in ("service", "role", "metric") if k in given]
    if len(subjects) != 1:
        got = ", ".join(subjects) or "none"
        yield doc.error(
            loc,
            "an expectation has exactly one of 'service' or 'role' (with a state) or 'metric' "
            f"(with op and value); got: {got}",
        )
        return
    if exp.isp is not None:
        yield from ctx.unknown(ctx.isp_names, (*loc, "isp"), exp.isp)
    if exp.method is not None:
        yield from ctx.unknown(ctx.methods, (*loc, "method"), exp.method)
    if exp.metric is None:
        yield from _check_state(ctx, loc, exp, given)
        return
    for key in sorted(given & {"state", "from", "until"}):
        yield doc.error(
            (*loc, key),
            f"'{key}' applies only to 'service' or 'role' expectations; a metric uses 'at'",
        )
    for key in ("op", "value"):
        if key not in given:
            yield doc.error(
                loc, f"{_missing(exp, key)} (a metric is compared: op: '>=', value: 0.2)"
            )
    if exp.method is not None:
        if exp.metric != "circumvention_success":
            yield doc.error(
                (*loc, "method"), "'method' applies only to metric circumvention_success"
            )
        elif exp.method == DIRECT:
            yield doc.error(
                (*loc, "method"), "circumvention_success needs a circumvention method, not 'direct'"
            )
    if exp.value is not None:
        if exp.metric in SHARE_METRICS and not 0 <= exp.value <= 1:
            yield doc.error(
                (*loc, "value"),
                f"{exp.value:g} is out of range: {exp.metric} is a share from 0 to 1",
            )
        elif exp.metric == "blocked_addresses" and (exp.value < 0 or exp.value != int(exp.value)):
            yield doc.error(
                (*loc, "value"), f"{exp.value:g} is not a count of addresses (a whole number >= 0)"
            )
    if exp.at is not None:
        yield from _check_bound(ctx, (*loc, "at"), exp.at)


def _check_state(
    ctx: Context, loc: Loc, exp: Expectation, given: set[str]
) -> Iterator[ErrorLocation]:
    doc = ctx.doc
    if "state" not in given:
        yield doc.error(loc, f"{_missing(exp, 'state')} (blocked, reachable or degraded)")
    for key in sorted(given & {"op", "value", "at"}):
        yield doc.error((*loc, key), f"'{key}' applies only to 'metric' expectations")
    if exp.service is not None:
        yield from ctx.unknown(ctx.services, (*loc, "service"), exp.service)
    window: dict[str, float | None] = {}
    for key, value in (("from", exp.from_), ("until", exp.until)):
        if value is not None:
            errors = list(_check_bound(ctx, (*loc, key), value))
            yield from errors
            if not errors:
                window[key] = _bound_s(ctx, value)
    begin, end = window.get("from"), window.get("until")
    if begin is not None and end is not None and end <= begin:
        yield doc.error(
            (*loc, "until"),
            f"the window ends (t+{format_duration(end)}) "
            f"before it begins (t+{format_duration(begin)})",
        )


def _check_bound(ctx: Context, loc: Loc, value: str | datetime) -> Iterator[ErrorLocation]:
    """A `from`, `until` or `at`: a known label, or a time that resolves."""
    if isinstance(value, str) and not is_relative_time(value):
        message = ctx.labels.unknown(value)
        if message is not None:
            yield ctx.doc.error(loc, message + "; or give a time such as '+3d'")
    elif isinstance(value, datetime) and ctx.clock is not None and ctx.start() is None:
        yield ctx.doc.error(loc, f"the absolute time {_shown(value)} needs clock.start")


def _bound_s(ctx: Context, value: str | datetime) -> float | None:
    if isinstance(value, str) and not is_relative_time(value):
        return ctx.label_at.get(value)
    return time_offset_s(value, ctx.start())


def check_campaign(doc: YamlDocument, path: Path) -> Iterator[ErrorLocation]:
    """Every cross-section problem of the campaign keys (and of profile_sets)."""
    if not isinstance(doc.data, dict):
        return
    yield from check_lab_addresses(doc)
    ctx = make_context(doc, path)
    yield from _check_isps(ctx)
    yield from check_old_filters(ctx)
    yield from _check_circumvention(ctx)
    yield from _check_timeline(ctx)
    yield from _check_probes(ctx)
    yield from _check_expectations(ctx)
