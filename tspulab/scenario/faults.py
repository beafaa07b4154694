"""Faults in the scenario language: the optional `faults:` list, for resilience experiments.

Each item breaks one part of the running lab at a scenario time, and (with `for`) repairs it
later, on the same clock as the timeline:

    faults:
      - {at: +10s, kind: kill-controller, for: 20s}   # the TSPU's os-ken controller, SIGKILL
      - {at: +40s, kind: kill-service, target: aws, for: 10s}   # the nginx of cloud aws
      - {at: +60s, kind: kill-dns}                     # the lab's resolver, for the rest of the run

- `kill-controller`: the os-ken controller (every TSPU); each TSPU does what its `fail_mode` says;
- `kill-ovs`: ovs-vswitchd, so every switch of the lab stops forwarding;
- `kill-service`, `target:` a cloud or a service: the nginx of that cloud's host (every service
  living in the cloud);
- `kill-dns`: dnsmasq, the subscribers' resolver;
- `fill-disk`: the file system of the run directory, filled to its last block.

`for` (a duration of scenario time) restarts what was killed, or frees the space, after that
long; without it the fault lasts until the run ends. The runner (`tspulab.scenario.fault_run`)
writes what happened, what traffic did and when it came back to `faults.jsonl`, and the report
has a "Faults" section. docs/scenario.md ("Faults") is the reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError

from tspulab.dpi.yamlload import ErrorLocation, YamlDocument, did_you_mean, listed
from tspulab.scenario.campaign import Clock
from tspulab.scenario.scalars import (
    Duration,
    Section,
    Str,
    TimeRef,
    format_duration,
    parse_duration,
    time_offset_s,
)

FaultKindName = Literal["kill-controller", "kill-ovs", "kill-service", "kill-dns", "fill-disk"]
FAULT_KINDS: tuple[FaultKindName, ...] = (
    "kill-controller",
    "kill-ovs",
    "kill-service",
    "kill-dns",
    "fill-disk",
)
#: Kinds that name what they break with `target`.
TARGETED: tuple[FaultKindName, ...] = ("kill-service",)
MAX_FAULTS = 100
_ONLY_ONE = {
    "kill-controller": "the run has one controller, for every TSPU",
    "kill-ovs": "one ovs-vswitchd carries every switch of the run",
    "kill-dns": "the run has one resolver",
    "fill-disk": "it fills the file system of the run directory",
}

if TYPE_CHECKING:
    from tspulab.scenario.model import Scenario


class Fault(Section):
    """One fault: what breaks, when, and for how long."""

    at: TimeRef
    """Scenario time it happens ("+30s", or an ISO time with clock.start)."""
    kind: FaultKindName
    target: Str | None = None
    """kill-service: the cloud whose nginx is killed, or a service (the cloud it lives in)."""
    for_: Duration | None = Field(default=None, alias="for")
    """Restart (free the space) after this much scenario time; none: broken until the end."""

    @property
    def for_s(self) -> float | None:
        return None if self.for_ is None else parse_duration(self.for_)


def fault_at_s(fault: Fault, clock: Clock) -> float:
    """Scenario seconds of a fault's `at` (checked at load: it resolves and is not negative)."""
    at = time_offset_s(fault.at, clock.start)
    if at is None:
        raise ValueError(f"fault at {fault.at} needs clock.start to have a time")
    return at


def cloud_of_target(target: str, clouds: Mapping[str, object], services: Mapping[str, str]) -> str:
    """The cloud a kill-service target names: a cloud itself, or the cloud of a service."""
    return target if target in clouds else services[target]


# --- cross-checks (file:line:field) ---------------------------------------------------------


def _names(raw: object, key: str = "name") -> dict[str, dict[str, object]]:
    items = raw if isinstance(raw, list) else []
    return {i[key]: i for i in items if isinstance(i, dict) and isinstance(i.get(key), str)}


def check_faults(doc: YamlDocument) -> Iterator[ErrorLocation]:
    """Targets name clouds or services of the scenario (and only kill-service has one); times
    resolve, are not negative, and the same part is not broken twice at once."""
    data = doc.data if isinstance(doc.data, dict) else {}
    raw = data.get("faults")
    if not isinstance(raw, list):
        return
    if len(raw) > MAX_FAULTS:
        yield doc.error(("faults",), f"{len(raw)} faults; at most {MAX_FAULTS} in one run")
    try:
        clock = Clock.model_validate(data.get("clock") or {})
    except ValidationError:
        clock = None  # reported at its own line
    clouds = _names(data.get("clouds"))
    services = {name: str(item.get("cloud")) for name, item in _names(data.get("services")).items()}
    #: (kind, cloud) -> (until scenario second or None for the run's end, line)
    busy: dict[tuple[str, str | None], tuple[float | None, int]] = {}
    timed: list[tuple[float, int, Fault, str | None, float | None]] = []
    for i, item in enumerate(raw):
        try:
            fault = Fault.model_validate(item)
        except ValidationError:
            continue  # reported at its own line by the structure check
        loc = ("faults", i)
        cloud = None
        if fault.kind in TARGETED:
            if fault.target is None:
                yield doc.error(
                    loc, f"{fault.kind} needs 'target': a cloud or a service whose nginx dies"
                )
                continue
            if fault.target not in clouds and fault.target not in services:
                known = [*clouds, *services]
                yield doc.error(
                    (*loc, "target"),
                    f"'{fault.target}' is neither a cloud nor a service"
                    + (did_you_mean(fault.target, known) or f" (clouds: {listed(clouds)})"),
                )
                continue
            cloud = cloud_of_target(fault.target, clouds, services)
        elif fault.target is not None:
            yield doc.error(
                (*loc, "target"),
                f"{fault.kind} takes no target ({_ONLY_ONE[fault.kind]})",
            )
            continue
        if clock is None:
            continue
        at = time_offset_s(fault.at, clock.start)
        if at is None:
            shown = (
                fault.at.isoformat().replace("+00:00", "Z")
                if isinstance(fault.at, datetime)
                else fault.at
            )
            yield doc.error(
                (*loc, "at"), f"{shown} is an absolute time: it needs clock.start to be set"
            )
            continue
        if at < 0:
            yield doc.error((*loc, "at"), "is before the clock start (scenario time 0)")
            continue
        for_s = fault.for_s
        if for_s is not None and for_s <= 0:
            yield doc.error((*loc, "for"), "must be longer than 0s (leave it out: until the end)")
            continue
        timed.append((at, i, fault, cloud, for_s))
    # In time order, whatever the order of the list.
    for at, i, fault, cloud, for_s in sorted(timed, key=lambda x: (x[0], x[1])):
        key = (fault.kind, cloud)
        earlier = busy.get(key)
        if earlier is not None and (earlier[0] is None or earlier[0] > at):
            until = (
                "the end of the run" if earlier[0] is None else f"t+{format_duration(earlier[0])}"
            )
            what = fault.kind + (f" of {cloud}" if cloud else "")
            yield doc.error(
                ("faults", i, "at"),
                f"{what} at t+{format_duration(at)} overlaps the one at line {earlier[1]} "
                f"(broken until {until}); give that one a shorter 'for'",
            )
            continue
        busy[key] = (None if for_s is None else at + for_s, doc.line_of(("faults", i)))


def planned_faults(scenario: Scenario) -> list[tuple[float, Fault, str | None]]:
    """The scenario's faults in time order: (scenario second, fault, cloud of a kill-service)."""
    clouds: dict[str, object] = {c.name: c for c in scenario.clouds}
    services = {s.name: s.cloud for s in scenario.services}
    out = [
        (
            fault_at_s(f, scenario.clock),
            f,
            cloud_of_target(f.target, clouds, services) if f.target is not None else None,
        )
        for f in scenario.faults
    ]
    return sorted(out, key=lambda x: x[0])
