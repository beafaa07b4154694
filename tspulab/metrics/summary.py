"""From probe results to the figures a report shows.

- **intended blocking**: share of target services that are unreachable;
- **collateral damage**: share of innocent services that are broken, plain and weighted by users;
- **over-blocking**: addresses the registry blocks against addresses the targets actually use.

A service is *broken* when fewer than half of its probes succeed (so one unlucky timeout does
not flip a verdict, and a service that never answers is broken however often it is asked). It is
*degraded* when it answers but its median goodput (transfer probes) is below the scenario's
threshold: throttling (Twitter 2021, YouTube 2024) degrades without breaking.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

BROKEN_BELOW = 0.5


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    role: str
    users: int
    address: str
    cloud: str


@dataclass
class ServiceSummary:
    name: str
    role: str
    users: int
    address: str
    cloud: str
    probes: int = 0
    ok: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    address_in_registry: bool = False
    goodputs_kbps: list[float] = field(default_factory=list)
    degraded_below_kbps: float = 0.0

    @property
    def goodput_kbps(self) -> float | None:
        return statistics.median(self.goodputs_kbps) if self.goodputs_kbps else None

    @property
    def degraded(self) -> bool:
        g = self.goodput_kbps
        return not self.broken and g is not None and g < self.degraded_below_kbps

    @property
    def reachability(self) -> float:
        return self.ok / self.probes if self.probes else 0.0

    @property
    def broken(self) -> bool:
        return self.reachability < BROKEN_BELOW

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["reachability"] = round(self.reachability, 4)
        d["broken"] = self.broken
        d["goodput_kbps"] = self.goodput_kbps
        d["degraded"] = self.degraded
        return d


@dataclass
class Summary:
    scenario: str
    services: list[ServiceSummary]
    blocked_addresses: int
    registry_prefixes: int
    target_addresses: int
    extra: dict[str, Any] = field(default_factory=dict)

    def _share(self, role: str, weighted: bool = False) -> float | None:
        group = [s for s in self.services if s.role == role]
        if not group:
            return None
        if weighted:
            total = sum(s.users for s in group)
            return sum(s.users for s in group if s.broken) / total
        return sum(1 for s in group if s.broken) / len(group)

    @property
    def intended_blocking(self) -> float | None:
        return self._share("target")

    @property
    def collateral_damage(self) -> float | None:
        return self._share("innocent")

    @property
    def collateral_damage_weighted(self) -> float | None:
        return self._share("innocent", weighted=True)

    @property
    def targets_affected(self) -> float | None:
        """Share of targets broken or degraded: what a throttle intends."""
        group = [s for s in self.services if s.role == "target"]
        if not group:
            return None
        return sum(1 for s in group if s.broken or s.degraded) / len(group)

    @property
    def collateral_degraded(self) -> float | None:
        """Share of innocent services broken or degraded (slowed below the threshold)."""
        group = [s for s in self.services if s.role == "innocent"]
        if not group:
            return None
        return sum(1 for s in group if s.broken or s.degraded) / len(group)

    @property
    def overblocking_ratio(self) -> float | None:
        return self.blocked_addresses / self.target_addresses if self.target_addresses else None

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "intended_blocking": self.intended_blocking,
            "collateral_damage": self.collateral_damage,
            "collateral_damage_weighted": self.collateral_damage_weighted,
            "collateral_degraded": self.collateral_degraded,
            "targets_affected": self.targets_affected,
            "blocked_addresses": self.blocked_addresses,
            "registry_prefixes": self.registry_prefixes,
            "target_addresses": self.target_addresses,
            "overblocking_ratio": self.overblocking_ratio,
            "services": [s.to_json() for s in self.services],
            **self.extra,
        }


def summarise(
    scenario: str,
    services: list[ServiceSpec],
    results: list[dict[str, Any]],
    *,
    blocked_addresses: int,
    registry_prefixes: int,
    in_registry: set[str],
    degraded_below_kbps: float = 1000.0,
) -> Summary:
    by_name = {
        s.name: ServiceSummary(
            s.name,
            s.role,
            s.users,
            s.address,
            s.cloud,
            address_in_registry=s.address in in_registry,
            degraded_below_kbps=degraded_below_kbps,
        )
        for s in services
    }
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in by_name}
    for r in results:
        if r.get("kind") == "transfer" and r.get("service") in by_name:
            speed = r.get("speed_download_bps") or 0.0
            by_name[r["service"]].goodputs_kbps.append(speed * 8 / 1000 if r.get("ok") else 0.0)
            continue
        if r.get("kind") != "https" or r.get("service") not in by_name:
            continue
        s = by_name[r["service"]]
        s.probes += 1
        s.ok += 1 if r.get("ok") else 0
        outcomes[s.name][r.get("outcome", "?")] += 1
    for name, counter in outcomes.items():
        by_name[name].outcomes = dict(counter)
    targets = {s.address for s in services if s.role == "target"}
    return Summary(
        scenario=scenario,
        services=list(by_name.values()),
        blocked_addresses=blocked_addresses,
        registry_prefixes=registry_prefixes,
        target_addresses=len(targets),
    )
