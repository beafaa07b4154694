"""The campaign sections of the scenario language: clock, ISPs, circumvention, expectations.

A campaign runs on scenario time: `clock.speed` scenario seconds pass per real second, counted from
`clock.start` (an instant the report shows, or none: then times are only offsets). Several ISPs
may each run their own TSPU profile, see registry changes late (`update_delay`) and cover only
part of their subscribers. Subscribers can turn to circumvention methods (a SOCKS5 proxy or an
OpenVPN server in some cloud). `expect` states what should be observed, as a service state or a
metric compared with a value. The timeline itself is `model.TimelineEntry`; checks that relate
these sections to the rest of the file are in `campaign_checks`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from tspulab.methods.options import (
    DEFAULT_PORTS,
    MethodKind,
    Options,
    default_options,
    validate_options,
)
from tspulab.scenario.hops import Hops
from tspulab.scenario.oldfilter_config import OldFilter, coerce_old_filter
from tspulab.scenario.scalars import (
    Address,
    Bool,
    Duration,
    Float,
    Instant,
    Int,
    IspName,
    Label,
    MethodName,
    Section,
    Str,
    TimeOrLabel,
    known_profiles,
    parse_duration,
    unknown_name,
)

DIRECT = "direct"
"""The method name of traffic that uses no circumvention."""
PROBE_KINDS = ("https", "http", "dns", "quic", "ping", "iperf3", "ttfb")
ProbeKind = Literal["https", "http", "dns", "quic", "ping", "iperf3", "ttfb"]
Metric = Literal[
    "intended_blocking",
    "collateral_damage",
    "collateral_damage_weighted",
    "collateral_degraded",
    "circumvention_success",
    "blocked_addresses",
    "intended_blocking_subscribers",
    "collateral_damage_subscribers",
    "subscribers_hit",
    "population_damage",
]
SHARE_METRICS = frozenset(
    {
        "intended_blocking",
        "collateral_damage",
        "collateral_damage_weighted",
        "collateral_degraded",
        "circumvention_success",
        "intended_blocking_subscribers",
        "collateral_damage_subscribers",
        "subscribers_hit",
        "population_damage",
    }
)
"""Metrics that are shares in [0, 1]; `blocked_addresses` is a count."""
Op = Literal[">=", "<=", ">", "<", "=="]


def _known_profile(value: str) -> str:
    known = known_profiles()
    if value not in known:
        raise unknown_name("profile", value, known)
    return value


class Clock(Section):
    """Scenario time: where it starts (for the report) and how fast it runs."""

    start: Instant | None = None
    """The instant scenario time 0 stands for (UTC); none: times are offsets from the run start."""
    speed: Float = Field(default=1.0, gt=0, le=1e9)
    """Scenario seconds per real second (86400: a scenario day per real second)."""

    def real_s(self, scenario_s: float) -> float:
        """Real seconds that `scenario_s` scenario seconds take."""
        return scenario_s / self.speed

    def instant(self, scenario_s: float) -> datetime | None:
        """The absolute time of a scenario offset, or None without `start`."""
        return None if self.start is None else self.start + timedelta(seconds=scenario_s)

    def iso(self, scenario_s: float) -> str | None:
        """`instant` as ISO 8601 ('2018-04-16T12:00:00Z'), as results.jsonl writes it."""
        at = self.instant(scenario_s)
        return None if at is None else at.isoformat().replace("+00:00", "Z")


class Isp(Section):
    """One ISP: its subscribers, the TSPU profile it runs and how promptly it applies the registry.

    In `Scenario.isps` and `Scenario.effective_isps()`, `profile` and `profile_sets` are always
    filled in (from the top-level keys when the file leaves them out).
    """

    name: IspName
    subscribers: Int = Field(default=2, ge=1, le=20)
    profile: Str | None = None
    profile_sets: dict[Str, tuple[Str, ...]] | None = None
    update_delay: Duration = "0s"
    """Registry changes reach this ISP's TSPU this much scenario time later."""
    coverage: Float = Field(default=1.0, ge=0, le=1)
    """Share of this ISP's subscribers whose traffic passes the TSPU."""
    old_filter: OldFilter | None = None
    """The ISP's own older filter beside the TSPU (tspulab.scenario.oldfilter_config); `true` in
    the file is a filter with every default, `false` none."""

    _old_filter = field_validator(
        "old_filter", mode="before", json_schema_input_type=bool | OldFilter | None
    )(coerce_old_filter)
    fail_mode: Literal["closed", "open"] = "closed"
    hops: Hops | None = None
    """Router hops from its subscribers to its TSPU and border router (scenario/hops.py);
    None: `topology.hops`."""
    customers: Int | None = Field(default=None, ge=1)
    """How many real subscribers the ISP's lab hosts stand for (weights the subscriber metrics of
    tspulab.metrics); None: one per lab host."""

    @field_validator("profile")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return None if value is None else _known_profile(value)

    def uncovered_hosts(self, hosts: tuple[str, ...]) -> tuple[str, ...]:
        """The hosts whose traffic bypasses the TSPU: the first floor(n * (1 - coverage))."""
        return hosts[: math.floor(len(hosts) * (1 - self.coverage) + 1e-9)]

    def host_weights(self, hosts: tuple[str, ...]) -> dict[str, float]:
        """Real subscribers each lab host stands for. The ISP's `customers` are split between
        covered and uncovered hosts by `coverage`, not by host count, so two hosts can model a
        30 % coverage; a side with no host (coverage 0.9 on two hosts) cannot be measured and
        its share goes to the other side."""
        total = float(self.customers if self.customers is not None else len(hosts))
        uncovered = self.uncovered_hosts(hosts)
        covered = tuple(h for h in hosts if h not in uncovered)
        if not uncovered or not covered:
            return {h: total / len(hosts) for h in hosts}
        out = {h: total * (1 - self.coverage) / len(uncovered) for h in uncovered}
        out.update({h: total * self.coverage / len(covered) for h in covered})
        return out

    @property
    def update_delay_s(self) -> float:
        return parse_duration(self.update_delay)

    def hosts(self, default_naming: bool = False) -> tuple[str, ...]:
        """Subscriber host names: `<isp>-<n>`, or `sub<n>` for the default single ISP."""
        prefix = "sub" if default_naming else f"{self.name}-"
        return tuple(f"{prefix}{n}" for n in range(1, self.subscribers + 1))


class Circumvention(Section):
    """A way around the censor: a proxy or VPN server at an address of a cloud, or direct.

    `kind` names the tool family and `options` its settings, checked per kind
    (`tspulab.methods.options`, docs/methods.md); `options` is always filled once loaded."""

    name: MethodName
    kind: MethodKind
    cloud: Str | None = None
    address: Address | None = None
    port: Int | None = Field(default=None, ge=1, le=65535)
    """Default per kind (1080 for socks5, 1194 for openvpn, ...: DEFAULT_PORTS); none for direct."""
    options: Options | None = None
    subscribers: tuple[Str, ...] | None = Field(default=None, min_length=1)
    """Subscriber hosts that use it (None: every probing subscriber)."""
    services: tuple[Str, ...] | None = Field(default=None, min_length=1)
    """Services its users reach through it (None: the targets). A company's or a payment
    network's own tunnel reaches innocent services."""
    applies_registry: Bool = False
    """Its server drops registry addresses at its exit: a VPN that joined the state registry
    system (docs/tspu-behaviour.md §10.1: Kaspersky Secure Connection, 2019)."""

    _options = field_validator("options", mode="before")(validate_options)

    @model_validator(mode="after")
    def _defaults(self) -> Circumvention:
        # Frozen model: fill the defaults once, while it is being built.
        if self.port is None and self.kind in DEFAULT_PORTS:
            object.__setattr__(self, "port", DEFAULT_PORTS[self.kind])
        if self.options is None:
            object.__setattr__(self, "options", default_options(self.kind))
        return self


class ProfileChange(Section):
    """`profile:` in a timeline entry: an ISP (or every ISP) switches behaviour profile."""

    isp: Str | None = None
    name: Str

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_profile(value)


class MoveService(Section):
    """`move_service:` in a timeline entry: a service moves to another address (and cloud)."""

    service: Str
    cloud: Str
    address: Address


class CircumventionChange(Section):
    """`circumvention:` in a timeline entry: methods subscribers start or stop using."""

    start: tuple[Str, ...] = ()
    stop: tuple[Str, ...] = ()


class Expectation(Section):
    """What should be observed: a service's (or role's) state, or a metric compared with a value.

    `from_s`/`until_s` are the resolved window of a state expectation in scenario seconds (None:
    open). `name` is always filled in once the scenario is loaded.
    """

    service: Str | None = None
    role: Literal["target", "innocent"] | None = None
    metric: Metric | None = None
    isp: Str | None = None
    method: Str | None = None
    """A circumvention name or "direct" (the default for state expectations)."""
    state: Literal["blocked", "reachable", "degraded"] | None = None
    from_: TimeOrLabel | None = Field(default=None, alias="from")
    until: TimeOrLabel | None = None
    op: Op | None = None
    value: Float | None = None
    at: TimeOrLabel | None = None
    """A timeline label (or "start"): the metric over that step, from that entry to the next;
    or a time: the step that contains it (`at_step` gives the label either way)."""
    name: Str | None = None

    _from_s: float | None = PrivateAttr(default=None)
    _until_s: float | None = PrivateAttr(default=None)
    _at_step: str | None = PrivateAttr(default=None)

    @property
    def kind(self) -> Literal["state", "metric"]:
        return "metric" if self.metric is not None else "state"

    @property
    def from_s(self) -> float | None:
        return self._from_s

    @property
    def until_s(self) -> float | None:
        return self._until_s

    @property
    def at_step(self) -> str | None:
        """The label of the step a metric is taken over (None: every step, the whole run)."""
        return self._at_step

    def holds(self, observed: float) -> bool:
        """Whether a metric's observed value satisfies `op value`."""
        if self.op is None or self.value is None:
            raise ValueError(f"expectation {self.name!r} compares no metric")
        return {
            ">=": observed >= self.value,
            "<=": observed <= self.value,
            ">": observed > self.value,
            "<": observed < self.value,
            "==": observed == self.value,
        }[self.op]

    def default_name(self) -> str:
        """'telegram blocked (rostelecom, direct) from stage 1', 'collateral_damage >= 0.2 ...'."""
        if self.metric is not None:
            head = f"{self.metric} {self.op} {self.value:g}" if self.value is not None else ""
            scope = [x for x in (self.isp, self.method) if x]
            where = f" at {_shown(self.at)}" if self.at is not None else ""
        else:
            subject = self.service or f"every {self.role}"
            head = f"{subject} {self.state}"
            scope = [x for x in (self.isp, self.method or DIRECT) if x]
            where = "".join(
                f" {word} {_shown(v)}"
                for word, v in (("from", self.from_), ("until", self.until))
                if v is not None
            )
        return head + (f" ({', '.join(scope)})" if scope else "") + where


def _shown(value: str | datetime) -> str:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


__all__ = [
    "DEFAULT_PORTS",
    "DIRECT",
    "PROBE_KINDS",
    "SHARE_METRICS",
    "Circumvention",
    "CircumventionChange",
    "Clock",
    "Expectation",
    "Isp",
    "Label",
    "Metric",
    "MoveService",
    "Op",
    "ProbeKind",
    "ProfileChange",
]
