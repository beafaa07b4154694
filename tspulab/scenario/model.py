"""The scenario language, version 1: typed, frozen pydantic models, one per YAML section.

Scalar types carry their own checks (IP addresses, CIDR prefixes with host bits zero, DNS
names, slugs) and readable messages; checks that relate sections to each other (cloud names,
prefix containment and overlap, uniqueness) live in `tspulab.scenario.schema`, which also loads
files. Field names here are the YAML keys.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tspulab.scenario.campaign import (
    DIRECT,
    Circumvention,
    CircumventionChange,
    Clock,
    Expectation,
    Isp,
    MoveService,
    ProbeKind,
    ProfileChange,
)
from tspulab.scenario.faults import Fault
from tspulab.scenario.hops import Hops
from tspulab.scenario.links import Links
from tspulab.scenario.oldfilter_config import OldFilter
from tspulab.scenario.paths import DATA_PREFIX, data_dir, resolve_data_path
from tspulab.scenario.scalars import (
    BUILTIN_PROFILES,
    KNOWN_TOPOLOGIES,
    PROFILES_DIR,
    Address,
    Bool,
    CloudName,
    Domain,
    Duration,
    Float,
    Int,
    IPAddress,
    IPNetwork,
    Label,
    Network,
    ScenarioName,
    Section,
    ServiceName,
    Str,
    TimeRef,
    format_duration,
    is_relative_time,
    known_profiles,
    parse_duration,
    time_offset_s,
    unknown_name,
)

__all__ = [
    "BUILTIN_PROFILES",
    "DATA_PREFIX",
    "DIRECT",
    "KNOWN_TOPOLOGIES",
    "PROFILES_DIR",
    "Circumvention",
    "CircumventionChange",
    "Clock",
    "Cloud",
    "Dns",
    "Expectation",
    "IPAddress",
    "IPNetwork",
    "Isp",
    "MoveService",
    "Probes",
    "ProfileChange",
    "RegistrySource",
    "Scenario",
    "Service",
    "TimelineEntry",
    "Topology",
    "data_dir",
    "known_profiles",
    "resolve_data_path",
    "scenario_json_schema",
]

DEFAULT_ISP = "isp"
"""The name of the single ISP of a scenario without `isps`."""
START_STEP = "start"
"""The step before the first timeline entry."""


# --- models -------------------------------------------------------------------------------


class Topology(Section):
    """Which topology class builds the network, and how many subscriber hosts it has."""

    name: Str
    subscribers: Int = Field(default=2, ge=1, le=50)
    hops: Hops = Hops()
    """Router hops to every ISP's TSPU and border router, unless the ISP sets its own."""

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KNOWN_TOPOLOGIES:
            raise unknown_name("topology", value, KNOWN_TOPOLOGIES)
        return value


class RegistrySource(Section):
    """One source of registry entries: exactly one of `inline`, `domains` or `file`."""

    inline: tuple[Network, ...] | None = Field(default=None, min_length=1)
    domains: tuple[Str, ...] | None = Field(default=None, min_length=1)
    """Domain rules (SNI/Host), all of the kind given by `match`."""
    match: Literal["exact", "suffix", "subtree", "substring"] = "exact"
    file: Str | None = None
    format: Literal["list", "rkn-dump"] = "list"
    decisions: tuple[Str, ...] | None = None

    @property
    def kind(self) -> Literal["inline", "domains", "file"]:
        if self.inline is not None:
            return "inline"
        return "domains" if self.domains is not None else "file"


# An ISP's old filter may carry its own registry sources: the campaign models were built before
# this class existed, so they are completed here.
OldFilter.model_rebuild(_types_namespace={"RegistrySource": RegistrySource})
Isp.model_rebuild()


class Dns(Section):
    """The resolver subscribers use; it must be reachable, so outside every cloud prefix."""

    address: Address = IPv4Address("77.88.8.8")


class Cloud(Section):
    """A hosting network: its prefixes, and whether it is domestic (inside Russia)."""

    name: CloudName
    prefixes: tuple[Network, ...] = Field(min_length=1)
    domestic: Bool = False


class Service(Section):
    """A service at one address of a cloud: a target of blocking or an innocent bystander."""

    name: ServiceName
    role: Literal["target", "innocent"]
    domains: tuple[Domain, ...] = Field(min_length=1)
    cloud: Str
    address: Address
    users: Int = Field(default=1, ge=1)
    protocol: Literal["https"] = "https"
    population: Str | None = None
    """The `populations` entry this service is one member of (e.g. one of 60 small sites); the
    report counts such services apart from the named ones, as k of N with an interval."""


class Population(Section):
    """A population of similar innocent services (small sites, say) that the scenario samples:
    the report gives how many of its members broke, with a binomial interval, and prints
    `assumptions` beside the figure."""

    name: Str
    assumptions: Str
    """How the members were chosen and placed, and what is assumed rather than sourced."""
    source: Str = ""
    """Where the members come from (a data file, the script that generated it)."""


class Probes(Section):
    """How often and how patiently each service is probed from each subscriber."""

    rounds: Int = Field(default=1, ge=1, le=100)
    timeout_s: Float = Field(default=3.0, ge=0.5, le=60)
    interval_s: Float = Field(default=0.0, ge=0)
    transfer_bytes: Int = Field(default=0, ge=0, le=64 * 1024 * 1024)
    """When > 0, each probe also downloads this many bytes (of /bulk) and records the goodput."""
    degraded_below_kbps: Float = Field(default=1000.0, gt=0)
    """A reachable service whose median goodput is below this is *degraded* (throttled)."""
    every: Duration | None = None
    """Also probe every this much scenario time, from 0 to the last timeline entry + every."""
    kinds: tuple[ProbeKind, ...] = Field(default=("https",), min_length=1)
    from_: Literal["all"] | tuple[Str, ...] = Field(default="all", alias="from")
    """"all", or the subscriber host names that probe."""

    @property
    def every_s(self) -> float | None:
        return None if self.every is None else parse_duration(self.every)


class TimelineEntry(Section):
    """One moment of the campaign and what changes then. `at_s` and `label` are always set once
    the scenario is loaded (`at_s`: scenario seconds since the clock start)."""

    at: TimeRef
    label: Label | None = None
    """Unique; default "t+<duration>", e.g. "t+3d4h"."""
    registry_add: tuple[RegistrySource, ...] = ()
    registry_remove: tuple[RegistrySource, ...] = ()
    profile: ProfileChange | None = None
    move_service: MoveService | None = None
    circumvention: CircumventionChange | None = None
    probe: Bool = False
    """Run a probe round at this moment."""

    _at_s: float | None = PrivateAttr(default=None)

    @property
    def at_s(self) -> float:
        if self._at_s is None:
            raise ValueError(f"timeline entry at {self.at} needs clock.start to have a time")
        return self._at_s

    def what(self) -> tuple[str, ...]:
        """What this entry does, in words (the `what` of results.jsonl event lines)."""
        out = [f"registry_add {_source_words(s)}" for s in self.registry_add]
        out += [f"registry_remove {_source_words(s)}" for s in self.registry_remove]
        if self.profile is not None:
            out.append(f"profile {self.profile.name} on {self.profile.isp or 'every ISP'}")
        if self.move_service is not None:
            m = self.move_service
            out.append(f"move_service {m.service} to {m.address} ({m.cloud})")
        if self.circumvention is not None:
            out += [f"circumvention start {n}" for n in self.circumvention.start]
            out += [f"circumvention stop {n}" for n in self.circumvention.stop]
        if self.probe:
            out.append("probe")
        return tuple(out)


def _source_words(source: RegistrySource) -> str:
    if source.inline is not None:
        return ", ".join(str(n) for n in source.inline)
    if source.domains is not None:
        return f"{source.match} " + ", ".join(source.domains)
    return f"file {source.file}"


class Scenario(Section):
    """A validated scenario (version 1). `path` is the file it was loaded from."""

    version: Literal[1]
    name: ScenarioName
    description: Str = ""
    topology: Topology
    profile: Str
    registry: tuple[RegistrySource, ...] = ()
    dns: Dns = Dns()
    clouds: tuple[Cloud, ...]
    services: tuple[Service, ...]
    populations: tuple[Population, ...] = ()
    probes: Probes = Probes()
    profile_sets: dict[Str, tuple[Str, ...]] = Field(default_factory=dict)
    """Entries added to the profile's named sets (e.g. the SNI-I list of tspu-2022)."""
    clock: Clock = Clock()
    isps: tuple[Isp, ...] | None = Field(default=None, min_length=1)
    """None: one ISP named "isp" with topology.subscribers and the top-level profile."""
    circumvention: tuple[Circumvention, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    expect: tuple[Expectation, ...] = ()
    links: Links | None = None
    """Link delay, jitter and loss per link class (tspulab.scenario.links); None: no delays."""
    faults: tuple[Fault, ...] = ()
    """Parts of the lab broken during the run (tspulab.scenario.faults); none by default."""

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # Lax Literal[1] would take `true` and `1.0`; a version is an integer.
        if type(value) is not int:
            raise PydanticCustomError(
                "version", "expected the integer 1, got {value}", {"value": repr(value)}
            )
        return value

    _path: Path = PrivateAttr(default_factory=lambda: Path("scenario.yaml"))

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        known = known_profiles()
        if value not in known:
            raise unknown_name("profile", value, known)
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Scenario:
        """Fill in what the file may leave out: ISP profiles, entry times and labels, names.

        A frozen model is completed here, once, while it is being built. References that do not
        resolve are left unresolved; `load_scenario`'s checks report them at their lines.
        """
        isps = tuple(
            isp.model_copy(
                update={
                    "profile": isp.profile or self.profile,
                    "profile_sets": _inherited_sets(isp, self.profile, self.profile_sets),
                }
            )
            for isp in self.isps or ()
        )
        entries: list[TimelineEntry] = []
        for entry in self.timeline:
            at_s = time_offset_s(entry.at, self.clock.start)
            label = entry.label or (
                f"t+{format_duration(at_s)}" if at_s is not None else f"t+{entry.at}"
            )
            resolved = entry.model_copy(update={"label": label})
            resolved._at_s = at_s
            entries.append(resolved)
        at_of: dict[str, float | None] = {START_STEP: 0.0}
        at_of.update((str(e.label), e._at_s) for e in entries)

        def offset(value: str | datetime | None) -> float | None:
            if isinstance(value, str) and not is_relative_time(value):
                return at_of.get(value)  # a label (unknown ones are reported by the checks)
            return None if value is None else time_offset_s(value, self.clock.start)

        expectations: list[Expectation] = []
        for exp in self.expect:
            method = exp.method or (DIRECT if exp.metric is None else None)
            done = exp.model_copy(update={"method": method})
            done = done.model_copy(update={"name": exp.name or done.default_name()})
            done._from_s, done._until_s = offset(exp.from_), offset(exp.until)
            done._at_step = _step_of(exp.at, offset(exp.at), entries)
            expectations.append(done)
        object.__setattr__(self, "isps", isps or None)
        object.__setattr__(self, "timeline", tuple(entries))
        object.__setattr__(self, "expect", tuple(expectations))
        return self

    @property
    def path(self) -> Path:
        return self._path

    @property
    def source_dir(self) -> Path:
        return self._path.parent

    def cloud(self, name: str) -> Cloud:
        return next(c for c in self.clouds if c.name == name)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def method(self, name: str) -> Circumvention:
        """A circumvention method by name; ValueError when there is none."""
        found = next((m for m in self.circumvention if m.name == name), None)
        if found is None:
            raise ValueError(f"no circumvention method {name!r}")
        return found

    def registry_file(self, source: RegistrySource) -> Path:
        """The resolved path of a `file:` registry source."""
        if source.file is None:
            raise ValueError("inline registry source has no file")
        return resolve_data_path(source.file, self._path)

    # --- ISPs, subscribers and scenario time ----------------------------------------------

    def effective_isps(self) -> tuple[Isp, ...]:
        """The ISPs of the file, or the default single ISP ("isp": topology.subscribers hosts
        sub1..subN, the top-level profile and profile_sets). `profile` is never None here."""
        if self.isps:
            return self.isps
        return (
            Isp.model_construct(
                name=DEFAULT_ISP,
                subscribers=self.topology.subscribers,
                profile=self.profile,
                profile_sets=self.profile_sets,
            ),
        )

    def isp(self, name: str) -> Isp:
        found = next((i for i in self.effective_isps() if i.name == name), None)
        if found is None:
            raise ValueError(f"no ISP {name!r}")
        return found

    def subscriber_hosts(self) -> dict[str, tuple[str, ...]]:
        """ISP name -> its subscriber host names (`<isp>-<n>`, or `sub<n>` without `isps`)."""
        default = not self.isps
        return {isp.name: isp.hosts(default_naming=default) for isp in self.effective_isps()}

    def isp_of(self, host: str) -> str:
        """The ISP a subscriber host belongs to."""
        for isp, hosts in self.subscriber_hosts().items():
            if host in hosts:
                return isp
        raise ValueError(f"no subscriber host {host!r}")

    def probe_subscribers(self) -> tuple[str, ...]:
        """The hosts that probe: every subscriber for `from: all`, else the listed ones."""
        if self.probes.from_ == "all":
            return tuple(h for hosts in self.subscriber_hosts().values() for h in hosts)
        return self.probes.from_

    def step_at(self, t_s: float) -> str:
        """Label of the latest timeline entry at or before `t_s`; "start" before any."""
        times = [e.at_s for e in self.timeline]
        i = bisect_right(times, t_s)
        return START_STEP if i == 0 else str(self.timeline[i - 1].label)

    def step_window(self, label: str) -> tuple[float, float | None]:
        """Scenario seconds [from, to) of a step: its entry to the next (None: open end)."""
        if label == START_STEP:
            return 0.0, (self.timeline[0].at_s if self.timeline else None)
        for i, entry in enumerate(self.timeline):
            if entry.label == label:
                nxt = self.timeline[i + 1].at_s if i + 1 < len(self.timeline) else None
                return entry.at_s, nxt
        raise ValueError(f"no timeline label {label!r}")

    def end_s(self) -> float:
        """Scenario time the campaign lasts: the last entry (+ probes.every when set), or 0."""
        last = self.timeline[-1].at_s if self.timeline else 0.0
        return last + (self.probes.every_s or 0.0)

    def probe_times(self) -> tuple[float, ...]:
        """Scenario seconds of probe rounds: 0, every `probes.every` up to `end_s()`, and each
        entry with `probe: true`, sorted and without repeats."""
        times = {0.0}
        every = self.probes.every_s
        if every:
            n = 0
            while n * every <= self.end_s() + 1e-9:
                times.add(n * every)
                n += 1
        times.update(e.at_s for e in self.timeline if e.probe)
        return tuple(sorted(times))


def _step_of(
    at: str | datetime | None, at_s: float | None, entries: list[TimelineEntry]
) -> str | None:
    """The step label a metric's `at` names: the label itself, or the step holding a time."""
    if at is None or (isinstance(at, str) and not is_relative_time(at)):
        return at
    if at_s is None or any(e._at_s is None for e in entries):
        return None
    i = bisect_right([float(e._at_s or 0.0) for e in entries], at_s)
    return START_STEP if i == 0 else str(entries[i - 1].label)


def _inherited_sets(
    isp: Isp, profile: str, sets: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """An ISP's profile_sets: its own, else the top-level ones if it runs the top-level profile."""
    if isp.profile_sets is not None:
        return isp.profile_sets
    return sets if (isp.profile or profile) == profile else {}


def scenario_json_schema() -> dict[str, Any]:
    """JSON Schema of the scenario language, for editors (structure only, not cross-checks).

    The names of topologies and profiles are listed as enums as they are known now, so an
    editor completes them; the validator itself reads them at load time.
    """
    schema = Scenario.model_json_schema()
    profiles = list(known_profiles())
    schema["properties"]["profile"]["enum"] = profiles
    schema["$defs"]["ProfileChange"]["properties"]["name"]["enum"] = profiles
    schema["$defs"]["Topology"]["properties"]["name"]["enum"] = list(KNOWN_TOPOLOGIES)
    return schema
