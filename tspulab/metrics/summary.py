"""From probe results to the figures a report shows.

- **intended blocking**: share of target services that are unreachable;
- **collateral damage**: share of innocent services that are broken, plain and weighted by users;
- **over-blocking**: addresses the registry blocks against addresses the targets actually use;
- **per subscriber** (`SubscriberView`): the same figures for each subscriber host, averaged with
  the weight of the real subscribers the host stands for, so an ISP whose TSPU covers half of its
  subscribers shows half of them losing the target instead of a verdict on pooled probes;
- **populations**: services that are members of a population (60 small sites, say) are counted
  apart from the named services, as k of N broken with a Wilson interval.

A service is *broken* when fewer than half of its probes succeed (so one unlucky timeout does
not flip a verdict, and a service that never answers is broken however often it is asked). It is
*degraded* when it answers but its median goodput (transfer probes) is below the scenario's
threshold: throttling (Twitter 2021, YouTube 2024) degrades without breaking.

Which probes judge a service (one rule for the whole-run summary, the timeline and expectations):
the kinds that use the service itself (`SERVICE_KINDS`: https, http, quic, ttfb), pooled. `dns`
and `ping` test a way to it (its name, its address answering ICMP), not the service: a site
blocked by its SNI still answers ping, so pooling ping would call it half reachable. They are
counted per kind (`ServiceSummary.kinds`) and judge a service only when nothing else probed it.
Only direct probes count; a probe through a circumvention method is that method's figure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

BROKEN_BELOW = 0.5
#: Probe kinds that use the service itself; pooled, they judge it.
SERVICE_KINDS = frozenset({"https", "http", "quic", "ttfb"})
#: Probe kinds that test a way to the service; they judge it only when nothing else probed it.
PATH_KINDS = frozenset({"dns", "ping"})
REACHABILITY_KINDS = SERVICE_KINDS | PATH_KINDS
THROUGHPUT_KINDS = frozenset({"transfer", "iperf3"})
DIRECT = "direct"
Z_95 = 1.959964  # two-sided 95 % normal quantile


def wilson(k: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial share k/n (95 % by default); (0, 1) when n is 0.

    Wilson rather than the normal approximation: it stays inside [0, 1] and is not degenerate at
    k = 0 or k = n, which is where collateral damage usually sits."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    role: str
    users: int
    address: str
    cloud: str
    population: str | None = None


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
    population: str | None = None
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    """Reachability probes per kind: {"probes": n, "ok": k}; `probes`/`ok` are the judging
    kinds' (module docstring)."""

    def count(self, kind: str, ok: bool, outcome: str) -> None:
        """One reachability probe; `probes` and `ok` follow the judging kinds."""
        tally = self.kinds.setdefault(kind, {"probes": 0, "ok": 0})
        tally["probes"] += 1
        tally["ok"] += int(ok)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        judged = self.judged_by
        self.probes = sum(self.kinds[k]["probes"] for k in judged)
        self.ok = sum(self.kinds[k]["ok"] for k in judged)

    @property
    def judged_by(self) -> list[str]:
        """The kinds the verdict pools: the service kinds probed, else every kind probed."""
        service = sorted(k for k in self.kinds if k in SERVICE_KINDS)
        return service or sorted(self.kinds)

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
        d["judged_by"] = self.judged_by
        return d


def kinds_text(kinds: Any, sep: str = ", ") -> str:
    """`dns 0/3, https 3/3` for a service probed by more than one kind ('' otherwise), from
    `ServiceSummary.kinds` or summary.json's `kinds`."""
    if not isinstance(kinds, dict) or len(kinds) < 2:
        return ""
    return sep.join(
        f"{k} {t.get('ok', 0)}/{t.get('probes', 0)}"
        for k, t in sorted(kinds.items())
        if isinstance(t, dict)
    )


@dataclass
class Summary:
    scenario: str
    services: list[ServiceSummary]
    blocked_addresses: int
    registry_prefixes: int
    target_addresses: int
    extra: dict[str, Any] = field(default_factory=dict)

    def named(self, role: str) -> list[ServiceSummary]:
        """The services of a role that belong to no population (the ones the scenario names)."""
        return [s for s in self.services if s.role == role and s.population is None]

    def population_counts(self, population: str | None = None) -> tuple[int, int]:
        """(broken, measured) members of a population (of every population with None)."""
        members = [
            s for s in self.services
            if s.population is not None and population in (None, s.population)
        ]  # fmt: skip
        return sum(1 for s in members if s.broken), len(members)

    @property
    def population_damage(self) -> float | None:
        """Share of the population members (every population) that are broken."""
        k, n = self.population_counts()
        return k / n if n else None

    @property
    def innocent_hit(self) -> bool | None:
        """Whether any innocent service, named or a population member, is broken."""
        group = [s for s in self.services if s.role == "innocent"]
        return any(s.broken for s in group) if group else None

    def _share(self, role: str, weighted: bool = False) -> float | None:
        group = self.named(role)
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
        group = self.named("target")
        if not group:
            return None
        return sum(1 for s in group if s.broken or s.degraded) / len(group)

    @property
    def collateral_degraded(self) -> float | None:
        """Share of named innocent services broken or degraded (slowed below the threshold)."""
        group = self.named("innocent")
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
            "population_damage": self.population_damage,
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
            population=s.population,
        )
        for s in services
    }
    for r in results:
        s = by_name.get(str(r.get("service")))
        if s is None or str(r.get("method") or DIRECT) != DIRECT:
            continue
        kind = r.get("kind")
        if kind in THROUGHPUT_KINDS:
            speed = r.get("speed_download_bps") or 0.0
            s.goodputs_kbps.append(speed * 8 / 1000 if r.get("ok") else 0.0)
        elif kind in REACHABILITY_KINDS:
            s.count(str(kind), bool(r.get("ok")), str(r.get("outcome", "?")))
    targets = {s.address for s in services if s.role == "target"}
    return Summary(
        scenario=scenario,
        services=list(by_name.values()),
        blocked_addresses=blocked_addresses,
        registry_prefixes=registry_prefixes,
        target_addresses=len(targets),
    )


@dataclass(frozen=True)
class PopulationFigure:
    """Members of a population broken, over the subscribers: the weighted mean count, out of n,
    and the weighted mean of each subscriber's Wilson bounds (the same members are probed from
    every subscriber, so their outcomes move together and the bounds combine linearly)."""

    broken: float
    n: int
    low: float
    high: float

    @property
    def share(self) -> float:
        return self.broken / self.n if self.n else 0.0


@dataclass
class SubscriberView:
    """One ISP's (or every ISP's) figures per subscriber host, averaged with each host's weight:
    the real subscribers it stands for (`customers` split by TSPU coverage; 1 when unknown).

    Each host's services are judged with `Summary`'s rules on that host's own probes, so no
    threshold is applied to probes pooled across subscribers that see different networks."""

    summaries: dict[str, Summary]  # host -> its direct probes
    weights: dict[str, float] = field(default_factory=dict)

    def weight(self, host: str) -> float:
        return self.weights.get(host, 1.0)

    def _mean(self, value: Callable[[Summary], float | None]) -> float | None:
        pairs: list[tuple[float, float]] = []
        for host, summary in self.summaries.items():
            v = value(summary)
            if v is not None and self.weight(host) > 0:
                pairs.append((self.weight(host), float(v)))
        total = sum(w for w, _ in pairs)
        return sum(w * v for w, v in pairs) / total if total else None

    @property
    def intended_blocking(self) -> float | None:
        """Share of targets broken, averaged over subscribers."""
        return self._mean(lambda s: s.intended_blocking)

    @property
    def collateral_damage(self) -> float | None:
        """Share of named innocent services broken, averaged over subscribers."""
        return self._mean(lambda s: s.collateral_damage)

    @property
    def subscribers_hit(self) -> float | None:
        """Share of subscribers who lose at least one innocent service (named or member)."""

        def hit(s: Summary) -> float | None:
            return None if s.innocent_hit is None else float(s.innocent_hit)

        return self._mean(hit)

    @property
    def population_damage(self) -> float | None:
        """Share of population members broken, averaged over subscribers."""
        return self._mean(lambda s: s.population_damage)

    def population(self, name: str | None = None) -> PopulationFigure | None:
        """k of N members of `name` (every population with None) broken, with the interval."""
        rows = []
        for host, s in self.summaries.items():
            k, n = s.population_counts(name)
            if n and self.weight(host) > 0:
                rows.append((self.weight(host), k, n, *wilson(k, n)))
        total = sum(r[0] for r in rows)
        if not total:
            return None
        mean = [sum(r[0] * r[i] for r in rows) / total for i in (1, 3, 4)]
        return PopulationFigure(mean[0], max(r[2] for r in rows), mean[1], mean[2])

    def metric(self, name: str) -> float | None:
        """`intended_blocking_subscribers`, `collateral_damage_subscribers`, `subscribers_hit`,
        `population_damage`."""
        return {
            "intended_blocking_subscribers": lambda: self.intended_blocking,
            "collateral_damage_subscribers": lambda: self.collateral_damage,
            "subscribers_hit": lambda: self.subscribers_hit,
            "population_damage": lambda: self.population_damage,
        }[name]()


SUBSCRIBER_METRICS = (
    "intended_blocking_subscribers",
    "collateral_damage_subscribers",
    "subscribers_hit",
    "population_damage",
)


def subscriber_views(
    services: list[ServiceSpec],
    results: list[dict[str, Any]],
    weights: dict[str, dict[str, float]],
    *,
    degraded_below_kbps: float = 1000.0,
) -> dict[str, SubscriberView]:
    """The whole run per ISP and subscriber host: ISP -> each host's own summary (the services it
    measured), weighted by the real subscribers the host stands for (`weights`: run.json's,
    the scenario's `customers` split by TSPU coverage)."""
    by_host: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        if isinstance(r.get("subscriber"), str):
            by_host.setdefault((str(r.get("isp") or "isp"), r["subscriber"]), []).append(r)
    views: dict[str, SubscriberView] = {}
    for (isp, host), mine in sorted(by_host.items()):
        s = summarise(
            host, services, mine, blocked_addresses=0, registry_prefixes=0, in_registry=set(),
            degraded_below_kbps=degraded_below_kbps,
        )  # fmt: skip
        s.services = [x for x in s.services if x.probes]  # what this host measured
        view = views.setdefault(isp, SubscriberView({}, dict(weights.get(isp) or {})))
        view.summaries[host] = s
    return views


def population_json(whole: Summary, views: dict[str, SubscriberView]) -> dict[str, Any]:
    """summary.json's `populations`: per population, its members broken over the whole run,
    pooled (k of n, 95 % Wilson interval) and per ISP per subscriber (the weighted mean count
    and bounds of `SubscriberView.population`), and all ISPs' subscribers together."""
    names = sorted({s.population for s in whole.services if s.population is not None})
    every = SubscriberView(
        {f"{isp}/{h}": s for isp, v in views.items() for h, s in v.summaries.items()},
        {f"{isp}/{h}": v.weight(h) for isp, v in views.items() for h in v.summaries},
    )

    def figure(fig: PopulationFigure | None) -> dict[str, Any] | None:
        if fig is None:
            return None
        return {
            "broken": round(fig.broken, 3), "n": fig.n, "share": round(fig.share, 4),
            "wilson_95": [round(fig.low, 4), round(fig.high, 4)],
        }  # fmt: skip

    out: dict[str, Any] = {}
    for name in names:
        k, n = whole.population_counts(name)
        low, high = wilson(k, n)
        out[name] = {
            "pooled": {"broken": k, "n": n, "wilson_95": [round(low, 4), round(high, 4)]},
            "per_subscriber": {isp: figure(v.population(name)) for isp, v in views.items()},
            "all_subscribers": figure(every.population(name)),
        }
    return out
