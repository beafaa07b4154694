"""What the checks between scenario sections share: the names a reference may use, addresses
already taken, and the checks of registry sources and profile sets used in several places.

A reference is only reported unknown when every item it could name validated: a name that failed
its own check is already reported at its own line, and would otherwise be reported twice.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tspulab.dpi.profile import Profile, ProfileError, load_profile
from tspulab.dpi.yamlload import (
    ErrorLocation,
    Loc,
    YamlDocument,
    did_you_mean,
    format_loc,
    listed,
)
from tspulab.scenario.campaign import DIRECT, Circumvention, Clock, Isp
from tspulab.scenario.model import (
    DEFAULT_ISP,
    START_STEP,
    Cloud,
    Dns,
    RegistrySource,
    Scenario,
    Service,
    TimelineEntry,
    Topology,
)
from tspulab.scenario.paths import DATA_PREFIX, data_path_problem, outside_note, resolve_data_path
from tspulab.scenario.scalars import (
    IPAddress,
    IPNetwork,
    format_duration,
    lab_address_problem,
    time_offset_s,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def valid_items(model: type[M], raw: object) -> list[tuple[int, M]]:
    """The items of a raw list that validate on their own, with their indices."""
    out: list[tuple[int, M]] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        with contextlib.suppress(ValidationError):
            out.append((i, model.model_validate(item)))
    return out


def valid(model: type[M], raw: object) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


@dataclass
class Names:
    """Names a reference may use, and whether the list is complete (every item validated)."""

    kind: str
    known: dict[str, int] = field(default_factory=dict)
    complete: bool = True

    def unknown(self, name: str) -> str | None:
        """The message for an unknown name, or None (known, or the list is incomplete)."""
        if name in self.known or not self.complete:
            return None
        hint = did_you_mean(name, self.known) or f" ({self.kind}s: {listed(self.known) or 'none'})"
        return f"unknown {self.kind} '{name}'{hint}"


def _names(
    kind: str, raw: object, items: Sequence[tuple[int, Any]], extra: Sequence[str] = ()
) -> Names:
    names = Names(kind, {n: -1 for n in extra})
    for i, item in items:
        names.known.setdefault(item.name, i)
    names.complete = not isinstance(raw, list) or len(items) == len(raw)
    return names


# --- prefixes: containment and overlap in time linear in the file -----------------------------


class PrefixIndex(Generic[T]):
    """Many prefixes, asked which hold an address or overlap a prefix without a pairwise scan
    (a cloud may list thousands of prefixes, and a file thousands of services).

    CIDR prefixes overlap only by containment: the prefixes holding an address are found by
    looking the address up once per prefix length present; those inside a prefix, by bisecting
    the prefixes sorted by first address.
    """

    def __init__(self, prefixes: Iterable[tuple[IPNetwork, T]]) -> None:
        self._by_length: dict[tuple[int, int], dict[int, list[T]]] = {}
        self._sorted: list[tuple[int, int, int, int]] = []  # version, first, prefixlen, slot
        self._owners: list[T] = []
        for net, owner in prefixes:
            shift = net.max_prefixlen - net.prefixlen
            table = self._by_length.setdefault((net.version, net.prefixlen), {})
            table.setdefault(int(net.network_address) >> shift, []).append(owner)
            self._sorted.append(
                (net.version, int(net.network_address), net.prefixlen, len(self._owners))
            )
            self._owners.append(owner)
        self._sorted.sort()

    def holding(self, address: IPAddress | IPNetwork, longest: int = 128) -> list[T]:
        """Owners of the prefixes (of length <= `longest`) that hold `address`."""
        first = (
            address.network_address if isinstance(address, IPv4Network | IPv6Network) else address
        )
        bits = 32 if first.version == 4 else 128
        out: list[T] = []
        for (version, length), table in self._by_length.items():
            if version == first.version and length <= longest:
                out += table.get(int(first) >> (bits - length), ())
        return out

    def holds(self, address: IPAddress) -> bool:
        return bool(self.holding(address))

    def overlapping(self, net: IPNetwork) -> list[T]:
        """Owners of the prefixes that overlap `net` (hold it, or lie inside it)."""
        out = self.holding(net, longest=net.prefixlen)
        last = int(net.broadcast_address)
        at = bisect.bisect_left(
            self._sorted, (net.version, int(net.network_address), net.prefixlen + 1)
        )
        while at < len(self._sorted):
            version, start, _, slot = self._sorted[at]
            if version != net.version or start > last:
                break
            out.append(self._owners[slot])
            at += 1
        return out


def cloud_overlaps(
    clouds: Sequence[tuple[int, Cloud]],
) -> Iterator[tuple[int, Cloud, int, IPNetwork, int, Cloud, IPNetwork]]:
    """(i, cloud, k, prefix, j, other, theirs): prefix k of cloud i overlaps prefix `theirs` of
    an earlier cloud j of another name; in file order of (i, k), then of j and its prefixes."""
    entries = [
        (n, i, cloud, k, prefix)
        for n, (i, cloud, k, prefix) in enumerate(
            (i, cloud, k, p) for i, cloud in clouds for k, p in enumerate(cloud.prefixes)
        )
    ]
    index: PrefixIndex[tuple[int, int, Cloud, int, IPNetwork]] = PrefixIndex(
        (e[4], e) for e in entries
    )
    for n, i, cloud, k, prefix in entries:
        earlier = sorted(
            (
                e
                for e in index.overlapping(prefix)
                if e[0] < n and e[1] != i and e[2].name != cloud.name
            ),
            key=lambda e: e[0],
        )
        for _, j, other, _, theirs in earlier:
            yield i, cloud, k, prefix, j, other, theirs


class CloudIndex:
    """Whether an address lies in a named cloud, for many services and few or many prefixes."""

    def __init__(self, clouds: Iterable[Cloud]) -> None:
        self._index: dict[str, PrefixIndex[int]] = {}
        for cloud in clouds:
            self._index.setdefault(cloud.name, PrefixIndex((p, 0) for p in cloud.prefixes))

    def holds(self, cloud: str, address: IPAddress) -> bool:
        index = self._index.get(cloud)
        return index is not None and index.holds(address)


# --- registry sources (top-level `registry` and the timeline's registry_add/remove) ----------


def check_registry_sources(
    doc: YamlDocument, where: Loc, raw: object, path: Path
) -> Iterator[ErrorLocation]:
    for i, src in valid_items(RegistrySource, raw):
        loc = (*where, i)
        given = src.model_fields_set
        if [src.inline, src.domains, src.file].count(None) != 2:
            yield doc.error(
                loc,
                "a registry source has exactly one of 'inline' "
                "(a list of addresses and prefixes), 'domains' (domain rules) or 'file' (a path)",
            )
            continue
        if "match" in given and src.domains is None:
            yield doc.error((*loc, "match"), "'match' applies only to 'domains' sources")
        if src.inline is not None or src.domains is not None:
            for key in sorted(given & {"format", "decisions"}):
                yield doc.error((*loc, key), f"'{key}' applies only to 'file' sources")
            continue
        assert src.file is not None
        if src.decisions is not None and src.format != "rkn-dump":
            yield doc.error((*loc, "decisions"), "'decisions' applies only with format: rkn-dump")
        problem = data_path_problem(src.file)
        if problem is not None:
            yield doc.error((*loc, "file"), problem)
            continue
        resolved = resolve_data_path(src.file, path)
        if not resolved.is_file():
            hint = (
                " (data: resolves via TSPULAB_DATA_DIR)" if src.file.startswith(DATA_PREFIX) else ""
            )
            yield doc.error((*loc, "file"), f"registry file not found: {resolved}{hint}")


def path_notes(scenario: Scenario) -> list[str]:
    """`registry[1].file: reads /srv/lists/x.txt, an absolute path of your own`: each registry
    file of a valid scenario that is read from outside its folder (not an error: the user's own
    files may live anywhere; `tspulab validate` shows them so nothing is read unseen)."""
    sources: list[tuple[Loc, RegistrySource]] = [
        (("registry", i), src) for i, src in enumerate(scenario.registry)
    ]
    for i, entry in enumerate(scenario.timeline):
        for key in ("registry_add", "registry_remove"):
            sources += [(("timeline", i, key, k), s) for k, s in enumerate(getattr(entry, key))]
    notes = []
    for loc, src in sources:
        note = outside_note(src.file, scenario.path) if src.file is not None else None
        if note is not None:
            notes.append(f"{format_loc((*loc, 'file'))}: {note}")
    return notes


# --- addresses a lab host cannot have ------------------------------------------------------


def check_lab_addresses(doc: YamlDocument) -> Iterator[ErrorLocation]:
    """Loopback, link-local, multicast, unspecified and the lab's own ranges, wherever the file
    gives a host an address or a cloud a prefix (`scalars.lab_address_problem` has the list)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    dns = valid(Dns, data.get("dns", {}))
    found: list[tuple[Loc, IPAddress | IPNetwork]] = []
    if dns is not None and "dns" in data:
        found.append((("dns", "address"), dns.address))
    for i, cloud in valid_items(Cloud, data.get("clouds")):
        found += [(("clouds", i, "prefixes", k), p) for k, p in enumerate(cloud.prefixes)]
    for i, svc in valid_items(Service, data.get("services")):
        found.append((("services", i, "address"), svc.address))
    for i, method in valid_items(Circumvention, data.get("circumvention")):
        if method.address is not None:
            found.append((("circumvention", i, "address"), method.address))
    for i, entry in valid_items(TimelineEntry, data.get("timeline")):
        if entry.move_service is not None:
            found.append((("timeline", i, "move_service", "address"), entry.move_service.address))
    for loc, value in found:
        problem = lab_address_problem(value)
        if problem is not None:
            yield doc.error(loc, problem)


# --- profiles and their sets -----------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _profile(name: str) -> Profile | str:
    """The packaged profile, or the reason it cannot be loaded."""
    try:
        return load_profile(name)
    except ProfileError as err:
        return str(err)


def check_profile_sets(
    doc: YamlDocument, where: Loc, profile_name: str, sets: dict[str, tuple[str, ...]]
) -> Iterator[ErrorLocation]:
    profile = _profile(profile_name)
    if isinstance(profile, str):
        yield doc.error(where, f"profile {profile_name} cannot be loaded: {profile}")
        return
    for name, entries in sets.items():
        if name not in profile.sets:
            known = listed(sorted(profile.sets)) or "none"
            hint = did_you_mean(name, profile.sets) or f" (its sets: {known})"
            yield doc.error((*where, name), f"profile {profile_name} has no set '{name}'{hint}")
            continue
        for k, entry in enumerate(entries):
            try:
                profile.with_set_entries(name, [entry])
            except ValueError as err:
                yield doc.error((*where, name, k), str(getattr(err, "message", err)))


# --- the campaign ------------------------------------------------------------------------------


@dataclass
class Context:
    doc: YamlDocument
    path: Path
    data: dict[str, Any]
    clock: Clock | None
    profile: str | None
    isps: list[tuple[int, Isp]]
    isp_names: Names
    hosts: Names
    clouds: dict[str, Cloud]
    clouds_complete: bool
    services: Names
    methods: Names
    labels: Names
    #: timeline label (given or default) -> scenario seconds (None: unresolved)
    label_at: dict[str, float | None]
    #: address -> (owner description, loc of its key)
    addresses: dict[IPAddress, tuple[str, Loc]]
    cloud_index: CloudIndex = field(default_factory=lambda: CloudIndex(()))

    def start(self) -> datetime | None:
        return None if self.clock is None else self.clock.start

    def unknown(self, names: Names, loc: Loc, name: str) -> Iterator[ErrorLocation]:
        message = names.unknown(name)
        if message is not None:
            yield self.doc.error(loc, message)

    def place(
        self, loc: Loc, owner: str, cloud_name: str, address: IPAddress
    ) -> Iterator[ErrorLocation]:
        """Checks that `address` lies in cloud `cloud_name` and belongs to no one else."""
        cloud = self.clouds.get(cloud_name)
        cloud_loc = (*loc, "cloud")
        if cloud is None:
            if self.clouds_complete:
                hint = (
                    did_you_mean(cloud_name, self.clouds)
                    or f" (clouds: {listed(self.clouds) or 'none'})"
                )
                yield self.doc.error(cloud_loc, f"unknown cloud '{cloud_name}'{hint}")
        elif not self.cloud_index.holds(cloud.name, address):
            prefixes = listed(cloud.prefixes)
            yield self.doc.error(
                (*loc, "address"), f"{address} is not inside cloud '{cloud.name}' ({prefixes})"
            )
        other = self.addresses.get(address)
        if other is not None and other[0] != owner:
            yield self.doc.error(
                (*loc, "address"),
                f"address {address} is already used by {other[0]} "
                f"(line {self.doc.line_of(other[1])})",
            )
        self.addresses.setdefault(address, (owner, (*loc, "address")))


def default_label(entry: TimelineEntry, at_s: float | None) -> str:
    """ "t+3d4h" for an entry without a label (as `Scenario` names it)."""
    return f"t+{format_duration(at_s)}" if at_s is not None else f"t+{entry.at}"


def make_context(doc: YamlDocument, path: Path) -> Context:
    data: dict[str, Any] = doc.data
    raw_isps = data.get("isps")
    isps = valid_items(Isp, raw_isps)
    topology = valid(Topology, data.get("topology"))
    hosts = Names("subscriber host")
    if raw_isps is None:
        count = topology.subscribers if topology is not None else 0
        hosts.known = {f"sub{n}": -1 for n in range(1, count + 1)}
        hosts.complete = topology is not None
        isp_names = Names("ISP", {DEFAULT_ISP: -1})
    else:
        isp_names = _names("ISP", raw_isps, isps)
        hosts.known = {h: i for i, isp in isps for h in isp.hosts()}
        hosts.complete = isp_names.complete
    raw_clouds = data.get("clouds")
    clouds = valid_items(Cloud, raw_clouds)
    raw_services = data.get("services")
    services = valid_items(Service, raw_services)
    raw_methods = data.get("circumvention")
    methods = valid_items(Circumvention, raw_methods)
    raw_timeline = data.get("timeline")
    entries = valid_items(TimelineEntry, raw_timeline)
    clock = valid(Clock, data.get("clock", {}))
    labels = Names("timeline label", {START_STEP: -1})
    labels.complete = not isinstance(raw_timeline, list) or len(entries) == len(raw_timeline)
    label_at: dict[str, float | None] = {START_STEP: 0.0}
    for i, entry in entries:
        at_s = time_offset_s(entry.at, clock.start if clock else None)
        label = entry.label or default_label(entry, at_s)
        labels.known.setdefault(label, i)
        label_at.setdefault(label, at_s)
    addresses: dict[IPAddress, tuple[str, Loc]] = {}
    for i, svc in services:
        addresses.setdefault(svc.address, (f"service '{svc.name}'", ("services", i, "address")))
    profile = data.get("profile")
    return Context(
        doc=doc,
        path=path,
        data=data,
        clock=clock,
        profile=profile if isinstance(profile, str) else None,
        isps=isps,
        isp_names=isp_names,
        hosts=hosts,
        clouds={c.name: c for _, c in reversed(clouds)},
        cloud_index=CloudIndex(c for _, c in clouds),
        clouds_complete=isinstance(raw_clouds, list) and len(clouds) == len(raw_clouds),
        services=_names("service", raw_services, services),
        methods=_names("circumvention method", raw_methods, methods, extra=(DIRECT,)),
        labels=labels,
        label_at=label_at,
        addresses=addresses,
    )
