"""The block registry: addresses, prefixes and domain rules, each with the source that listed it.

This models what Roskomnadzor's unified register hands to the filters: IPv4/IPv6 addresses and
prefixes, and domain names with a match kind (see ``domains.MatchKind``). The core keeps the exact
set for its own decisions (``contains_address``, ``match_domain``) and hands the flow-rule layer the
fewest prefixes that cover exactly the same addresses (``aggregated_prefixes``), plus diffs between
two versions (``diff``) so a registry update becomes a few flow-mods, not a rebuild.

API (what the policy, the scenario runner and the controller call)::

    reg = Registry()
    reg.add_address("18.196.0.0/15", source="inline")           # -> AddressEntry
    reg.add_domain("*.twimg.com", MatchKind.SUFFIX, source="CP-THR")  # -> DomainRule
    reg.merge(load_list("telegram-2018/stage0_telegram_own_2-1779-2018.txt"))  # in place
    reg.merge(load_rkn_dump("z-i_dump_2018-05-05_partial.cp1251.csv.gz",
                            decisions={"2-1779/2018"}))
    reg.contains_address(b"\\x12\\xc4\\x70\\x07")  # str, int, ipaddress, packed -> entry | None
    reg.match_domain("Twitter.com.")            # case folded, trailing dot dropped -> rule | None
    reg.match_domain_raw("twitter.com.")        # as given: the 2021 throttler missed this
    reg.aggregated_prefixes(4)                  # [IPv4Network, ...], fewest, exact
    reg.address_count(4); reg.prefix_count(4)
    d = diff(old, new)  # d.add_prefixes, d.remove_prefixes, d.add_domains, d.remove_domains

Loaders (``registry_sources``, re-exported here): ``load_list``, ``load_inline``, ``load_rkn_dump``,
``load_aws_ranges``, ``load_cloud_ranges``. Lookup structures and their measured alternatives are in
docs/registry.md.
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import NamedTuple

from tspulab.dpi.domains import (
    DomainMatcher,
    DomainPatternError,
    DomainRule,
    MatchKind,
    canonical_rule_name,
    parse_pattern,
)
from tspulab.dpi.prefixes import (
    BITS,
    FAMILY,
    AddressError,
    Network,
    aggregate,
    intersection_size,
    interval_to_prefixes,
    looks_like_address,
    merge_intervals,
    network_of,
    parse_network,
    prefix_objects,
)
from tspulab.dpi.registry_sources import (
    LoadWarning,
    RegistryLoadError,
    SourceStats,
    load_aws_ranges,
    load_cloud_ranges,
    load_inline,
    load_list,
    load_rkn_dump,
)

__all__ = [
    "AddressEntry",
    "AddressError",
    "DomainPatternError",
    "DomainRule",
    "LoadWarning",
    "MatchKind",
    "Network",
    "Registry",
    "RegistryDiff",
    "RegistryLoadError",
    "SourceStats",
    "aggregate",
    "diff",
    "interval_to_prefixes",
    "load_aws_ranges",
    "load_cloud_ranges",
    "load_inline",
    "load_list",
    "load_rkn_dump",
    "looks_like_address",
    "parse_network",
    "parse_pattern",
]

AddressLike = str | bytes | int | IPv4Address | IPv6Address


class AddressEntry(NamedTuple):
    """One registry address entry: a single IP is a /32 (or /128) prefix."""

    version: int
    first: int
    """Network address as an integer."""
    prefixlen: int
    source: str
    """``file:line``, ``inline[i]`` or what the caller passed."""
    decision: str | None = None

    @property
    def last(self) -> int:
        return self.first + (1 << (BITS[self.version] - self.prefixlen)) - 1

    @property
    def network(self) -> Network:
        return network_of(self.version, self.first, self.prefixlen)

    def __str__(self) -> str:
        return f"{self.network} ({self.source})"


class _AddressIndex:
    """Disjoint sorted intervals, each owned by the most specific entry covering it.

    Registry prefixes nest or are disjoint (never overlap partly), so a sweep with a stack turns
    them into at most 2n+1 intervals; a lookup is then one ``bisect`` over plain ints.
    """

    __slots__ = ("ends", "merged", "owners", "starts")

    def __init__(self, entries: list[AddressEntry]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.owners: list[AddressEntry] = []
        ordered = sorted(entries, key=lambda e: (e.first, e.prefixlen))
        stack: list[AddressEntry] = []
        cursor = 0  # first address of the innermost open entry not yet emitted
        previous: tuple[int, int] | None = None
        for entry in ordered:
            if (entry.first, entry.prefixlen) == previous:
                continue  # the same prefix listed again: the first source is reported
            previous = (entry.first, entry.prefixlen)
            while stack and stack[-1].last < entry.first:
                top = stack.pop()
                self._emit(cursor, top.last, top)
                cursor = top.last + 1
            if stack:
                self._emit(cursor, entry.first - 1, stack[-1])
            stack.append(entry)
            cursor = entry.first
        while stack:
            top = stack.pop()
            self._emit(cursor, top.last, top)
            cursor = top.last + 1
        self.merged = merge_intervals(zip(self.starts, self.ends, strict=True))

    def _emit(self, start: int, end: int, owner: AddressEntry) -> None:
        if start <= end:
            self.starts.append(start)
            self.ends.append(end)
            self.owners.append(owner)

    def find(self, value: int) -> AddressEntry | None:
        i = bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.owners[i]
        return None


@dataclass
class Registry:
    """A set of address entries and domain rules; lookups build their index on first use."""

    warnings: list[LoadWarning] = field(default_factory=list)
    """Problems met while loading (bad entries skipped, a cut-off last line), in order."""
    sources: list[SourceStats] = field(default_factory=list)
    """What each loaded file contributed."""
    updated: str | None = None
    """The ``Updated:`` stamp of a Roskomnadzor dump, when one was loaded."""
    _addresses: list[AddressEntry] = field(default_factory=list, repr=False)
    _domains: dict[tuple[MatchKind, str], DomainRule] = field(default_factory=dict, repr=False)
    _index: dict[int, _AddressIndex] | None = field(default=None, repr=False)
    _matcher: DomainMatcher | None = field(default=None, repr=False)

    # -- building -------------------------------------------------------------------------------
    def add_address(
        self,
        entry: str,
        source: str = "inline",
        *,
        decision: str | None = None,
        strict: bool = True,
    ) -> AddressEntry:
        """Add an IP or prefix given as text; ``AddressError`` when it is not one."""
        version, first, prefixlen = parse_network(entry.strip(), strict=strict)
        added = AddressEntry(version, first, prefixlen, source, decision)
        self._addresses.append(added)
        self._index = None
        return added

    def add_network(
        self,
        network: Network | IPv4Address | IPv6Address,
        source: str = "inline",
        *,
        decision: str | None = None,
    ) -> AddressEntry:
        """Add an ``ipaddress`` network or address."""
        if isinstance(network, IPv4Address | IPv6Address):
            network = ip_network(network)
        added = AddressEntry(
            network.version, int(network.network_address), network.prefixlen, source, decision
        )
        self._addresses.append(added)
        self._index = None
        return added

    def add_domain(
        self,
        pattern: str,
        kind: MatchKind = MatchKind.EXACT,
        source: str = "inline",
        *,
        decision: str | None = None,
    ) -> DomainRule:
        """Add a domain rule; the first source of an identical (kind, name) rule is kept."""
        return self._add_rule(canonical_rule_name(pattern, kind), kind, source, pattern, decision)

    def _add_rule(
        self, name: str, kind: MatchKind, source: str, pattern: str, decision: str | None
    ) -> DomainRule:
        rule = DomainRule(name, kind, source, pattern, decision)
        kept = self._domains.setdefault(rule.key, rule)
        self._matcher = None
        return kept

    def add(
        self,
        text: str,
        source: str = "inline",
        domain_kind: MatchKind = MatchKind.EXACT,
        *,
        decision: str | None = None,
    ) -> AddressEntry | DomainRule:
        """Add one list line: an address or prefix, or a domain pattern (see ``parse_pattern``).

        Raises ``AddressError`` or ``DomainPatternError`` (both ``ValueError``) naming the problem.
        """
        text = text.strip()
        if looks_like_address(text):
            return self.add_address(text, source, decision=decision)
        kind, name = parse_pattern(text, domain_kind)
        return self._add_rule(name, kind, source, text, decision)

    def merge(self, other: Registry) -> Registry:
        """Add everything of ``other`` to this registry (in place) and return this registry."""
        self._addresses.extend(other._addresses)
        for key, rule in other._domains.items():
            self._domains.setdefault(key, rule)
        self.warnings.extend(other.warnings)
        self.sources.extend(other.sources)
        self.updated = self.updated or other.updated
        self._index = None
        self._matcher = None
        return self

    # -- contents -------------------------------------------------------------------------------
    def address_entries(self, version: int | None = None) -> list[AddressEntry]:
        """Entries as added (duplicates and nested prefixes included)."""
        return [e for e in self._addresses if version is None or e.version == version]

    def domain_rules(self, kind: MatchKind | None = None) -> list[DomainRule]:
        return [r for r in self._domains.values() if kind is None or r.kind is kind]

    def domain_count(self) -> int:
        return len(self._domains)

    def entry_count(self, version: int | None = None) -> int:
        return len(self.address_entries(version))

    def _indexes(self) -> dict[int, _AddressIndex]:
        if self._index is None:
            self._index = {
                v: _AddressIndex([e for e in self._addresses if e.version == v]) for v in (4, 6)
            }
        return self._index

    def aggregated_prefixes(self, version: int | None = None) -> list[Network]:
        """Fewest prefixes covering exactly the listed addresses, sorted, IPv4 first."""
        indexes = self._indexes()
        versions = (4, 6) if version is None else (version,)
        return [p for v in versions for p in prefix_objects(v, indexes[v].merged)]

    def aggregated_intervals(self, version: int = 4) -> list[tuple[int, int]]:
        """The covered addresses as sorted, disjoint, non-adjacent inclusive integer intervals."""
        return list(self._indexes()[version].merged)

    def address_count(self, version: int = 4) -> int:
        """How many distinct addresses are covered (overlaps counted once)."""
        return sum(end - start + 1 for start, end in self._indexes()[version].merged)

    def prefix_count(self, version: int | None = None) -> int:
        """How many prefixes ``aggregated_prefixes`` gives (the flow rules the switch needs)."""
        indexes = self._indexes()
        versions = (4, 6) if version is None else (version,)
        return sum(
            len(interval_to_prefixes(s, e, BITS[v])) for v in versions for s, e in indexes[v].merged
        )

    # -- lookups --------------------------------------------------------------------------------
    def contains_address(self, ip: AddressLike, version: int = 4) -> AddressEntry | None:
        """The most specific entry covering ``ip``, or ``None``.

        ``ip`` may be text, an ``ipaddress`` address, packed bytes (4 or 16, network order, as cut
        from a packet) or an int (then ``version`` says which family it is).
        """
        index = self._index or self._indexes()
        kind = type(ip)
        if kind is bytes:
            assert isinstance(ip, bytes)
            value = int.from_bytes(ip)
            if len(ip) == 4:
                return index[4].find(value)
            if len(ip) == 16:
                return index[6].find(value)
            raise AddressError(f"packed address must be 4 or 16 bytes, not {len(ip)}")
        if kind is int:
            assert isinstance(ip, int)
            if not 0 <= ip < 1 << BITS.get(version, 0):
                raise AddressError(f"{ip} is not an IPv{version} address")
            return index[version].find(ip)
        if isinstance(ip, str):
            v = 6 if ":" in ip else 4
            try:
                return index[v].find(int.from_bytes(socket.inet_pton(FAMILY[v], ip)))
            except (OSError, ValueError):
                raise AddressError(f"not an IP address: {ip!r}") from None
        if isinstance(ip, IPv4Address | IPv6Address):
            return index[ip.version].find(int(ip))
        raise AddressError(f"cannot look up {type(ip).__name__} as an address")

    def _domain_matcher(self) -> DomainMatcher:
        if self._matcher is None:
            self._matcher = DomainMatcher(self._domains.values())
        return self._matcher

    def match_domain_raw(self, name: str | bytes) -> DomainRule | None:
        """The rule ``name`` hits, matched exactly as given (case and a trailing dot kept)."""
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        return (self._matcher or self._domain_matcher()).match(name)

    def match_domain(
        self, name: str | bytes, *, fold_case: bool = True, strip_trailing_dot: bool = True
    ) -> DomainRule | None:
        """The rule ``name`` hits after the normalisation a behaviour profile asks for."""
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if fold_case:
            name = name.lower()
        if strip_trailing_dot and name.endswith("."):
            name = name[:-1]
        return (self._matcher or self._domain_matcher()).match(name)

    def match_domain_all(self, name: str) -> list[DomainRule]:
        """Every rule ``name`` (as given) hits, most specific first: for collateral reports."""
        return self._domain_matcher().match_all(name)


@dataclass(frozen=True)
class RegistryDiff:
    """What turns the aggregated rule set of one registry version into the next.

    Prefix lists are rule-level: ``(old_rules - remove_prefixes) | add_prefixes == new_rules``
    exactly, where both rule sets are ``aggregated_prefixes()``. Install ``add_prefixes`` before
    removing ``remove_prefixes`` so no listed address is ever briefly uncovered.
    """

    add_prefixes: list[Network]
    remove_prefixes: list[Network]
    add_domains: list[DomainRule]
    remove_domains: list[DomainRule]
    addresses_added: dict[int, int]
    """Per IP version: addresses newly covered."""
    addresses_removed: dict[int, int]
    """Per IP version: addresses no longer covered."""

    def apply(self, old_rules: Iterable[Network]) -> list[Network]:
        """The new rule set from the old one (sorted, IPv4 first), as a switch would hold it."""
        kept = set(old_rules) - set(self.remove_prefixes)
        result = kept | set(self.add_prefixes)
        return sorted(result, key=lambda n: (n.version, int(n.network_address), n.prefixlen))

    @property
    def empty(self) -> bool:
        return not (
            self.add_prefixes or self.remove_prefixes or self.add_domains or self.remove_domains
        )


def diff(old: Registry, new: Registry) -> RegistryDiff:
    """Prefixes and domain rules to add and to remove to go from ``old`` to ``new``."""
    old_rules = old.aggregated_prefixes()
    new_rules = new.aggregated_prefixes()
    old_set, new_set = set(old_rules), set(new_rules)
    old_keys = {r.key for r in old.domain_rules()}
    new_keys = {r.key for r in new.domain_rules()}
    added: dict[int, int] = {}
    removed: dict[int, int] = {}
    for version in (4, 6):
        before = old.aggregated_intervals(version)
        after = new.aggregated_intervals(version)
        both = intersection_size(before, after)
        added[version] = new.address_count(version) - both
        removed[version] = old.address_count(version) - both
    return RegistryDiff(
        add_prefixes=[p for p in new_rules if p not in old_set],
        remove_prefixes=[p for p in old_rules if p not in new_set],
        add_domains=[r for r in new.domain_rules() if r.key not in old_keys],
        remove_domains=[r for r in old.domain_rules() if r.key not in new_keys],
        addresses_added=added,
        addresses_removed=removed,
    )
