"""Metrics over scenario time: what a campaign did to each ISP's subscribers, step by step.

Input is the run's results.jsonl records (probe, registry and event lines; see the issue 7
results contract) and the run's services. Records are bucketed two ways:

- **steps**: by the `step` label (the latest timeline entry at or before the probe); a step lasts
  from its entry's scenario time to the next one's;
- **rounds**: one probe round is a contiguous run of probe lines (in file order, which is
  measurement order) that share `step` and `round` (or, where `round` is 0 or missing, `step` and
  `scenario_t_s`); its time is its earliest `scenario_t_s`.

In each bucket, per ISP, each service measured via the `direct` method becomes a
`ServiceSummary` and the bucket's figures come from a `Summary`, so the rules are summary.py's:
a service is *broken* when fewer than half of its reachability probes succeeded (those of the
kinds that use the service, https, http, quic and ttfb; dns and ping only for a service nothing
else probed), *degraded* when it answers but its median transfer goodput is below the threshold.
Services with no probe in a bucket are left out of it, not counted as broken.

Each point also keeps every subscriber host's own summary (`Point.subscribers`, a
`SubscriberView`): the `*_subscribers` metrics, `subscribers_hit` and `population_damage` average
each host's figures with the weight of the real subscribers it stands for (run.json's ISP
`weights`), so partial TSPU coverage shows as partial damage rather than flipping at one half.

Circumvention success is the share of probes of target services made via a method (a
circumvention name) that succeeded. Blocked addresses are those of the ISP's latest registry line
in effect at the end of the bucket (registry changes reach an ISP after its update delay).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tspulab.metrics.summary import (
    DIRECT,
    REACHABILITY_KINDS,
    SUBSCRIBER_METRICS,
    THROUGHPUT_KINDS,
    ServiceSpec,
    ServiceSummary,
    SubscriberView,
    Summary,
)

PROBE_KINDS = REACHABILITY_KINDS | THROUGHPUT_KINDS
START_STEP = "start"

# Metric names an expectation or a plot may ask a Point for.
METRICS = (
    "intended_blocking",
    "collateral_damage",
    "collateral_damage_weighted",
    "collateral_degraded",
    "targets_affected",
    "circumvention_success",
    "blocked_addresses",
    "overblocking_ratio",
    "throughput_kbps",
    "ttfb_s",
    "target_reachability",
    *SUBSCRIBER_METRICS,
)
_POINT_METRICS = ("throughput_kbps", "ttfb_s", "target_reachability")


@dataclass(frozen=True)
class Bucket:
    """A stretch of scenario time: one step (`kind` "step") or one probe round ("round")."""

    kind: str
    key: str
    label: str
    step: str
    start_s: float
    end_s: float | None  # None: open to the end of the run

    def contains(self, t_s: float) -> bool:
        return t_s >= self.start_s and (self.end_s is None or t_s < self.end_s)


@dataclass(frozen=True)
class RegistryPoint:
    isp: str
    t_s: float
    blocked_addresses: int
    prefixes: int
    domains: int


@dataclass(frozen=True)
class Event:
    t_s: float
    label: str
    what: tuple[str, ...]


@dataclass
class Point:
    """One ISP over one bucket."""

    isp: str
    bucket: Bucket
    summary: Summary  # direct-method services only
    # (method, service): (ok, tries) of probes made via a circumvention method (innocent services
    # too: a company's own tunnel; circumvention_success counts the targets only).
    circumvention: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    goodputs_kbps: list[float] = field(default_factory=list)
    ttfbs_s: list[float] = field(default_factory=list)
    registry: RegistryPoint | None = None
    subscribers: SubscriberView = field(default_factory=lambda: SubscriberView({}))

    @property
    def throughput_kbps(self) -> float | None:
        return statistics.median(self.goodputs_kbps) if self.goodputs_kbps else None

    @property
    def ttfb_s(self) -> float | None:
        return statistics.median(self.ttfbs_s) if self.ttfbs_s else None

    @property
    def target_reachability(self) -> float | None:
        """Share of direct probes of target services that succeeded (the probes that judge each
        target: summary.py's rule, so ping answering for an SNI-blocked target does not count)."""
        targets = [s for s in self.summary.services if s.role == "target"]
        probes = sum(s.probes for s in targets)
        return sum(s.ok for s in targets) / probes if probes else None

    @property
    def blocked_addresses(self) -> int | None:
        return self.registry.blocked_addresses if self.registry else None

    def circumvention_tries(self, method: str, service: str | None = None) -> tuple[int, int]:
        targets = {x.name for x in self.summary.services if x.role == "target"}
        pairs = [
            v for (m, s), v in self.circumvention.items()
            if m == method and (s == service if service is not None else s in targets)
        ]  # fmt: skip
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    def circumvention_success(self, method: str, service: str | None = None) -> float | None:
        """Share of probes of target services via `method` that reached them."""
        ok, tries = self.circumvention_tries(method, service)
        return ok / tries if tries else None

    def service(self, name: str) -> ServiceSummary | None:
        return next((s for s in self.summary.services if s.name == name), None)

    def metric(self, name: str, method: str | None = None) -> float | None:
        """A figure by name (see METRICS); None when the bucket did not measure it."""
        if name == "circumvention_success":
            return self.circumvention_success(method or "")
        if name == "blocked_addresses":
            b = self.blocked_addresses
            return None if b is None else float(b)
        if name in SUBSCRIBER_METRICS:
            return self.subscribers.metric(name)
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        value = getattr(self if name in _POINT_METRICS else self.summary, name)
        return None if value is None else float(value)


@dataclass
class Timeline:
    isps: list[str]
    services: list[ServiceSpec]
    steps: list[Bucket]
    rounds: list[Bucket]
    points: dict[tuple[str, str, str], Point]  # (bucket kind, bucket key, isp)
    registry: list[RegistryPoint]
    events: list[Event]
    methods: list[str]  # circumvention methods seen (not "direct")
    # (method, service): (ok, tries), for target services over the whole run.
    circumvention_table: dict[tuple[str, str], tuple[int, int]]
    clock_start: datetime | None = None
    degraded_below_kbps: float = 1000.0

    def buckets(self, kind: str) -> list[Bucket]:
        return self.steps if kind == "step" else self.rounds

    def point(self, bucket: Bucket, isp: str) -> Point | None:
        return self.points.get((bucket.kind, bucket.key, isp))

    def role(self, service: str) -> str | None:
        return next((s.role for s in self.services if s.name == service), None)

    def step(self, label: str) -> Bucket | None:
        return next((b for b in self.steps if b.key == label), None)

    def step_at(self, t_s: float) -> Bucket | None:
        return next((b for b in self.steps if b.contains(t_s)), None)

    def series(
        self, metric: str, isp: str, kind: str = "round", method: str | None = None
    ) -> list[tuple[float, float]]:
        """(bucket start, value) for every bucket where the ISP measured the metric."""
        out = []
        for b in self.buckets(kind):
            p = self.point(b, isp)
            v = p.metric(metric, method) if p else None
            if v is not None:
                out.append((b.start_s, v))
        return out

    def reachability_matrix(
        self, isp: str, kind: str = "round", method: str = DIRECT
    ) -> tuple[list[str], list[Bucket], list[list[float | None]]]:
        """Service × bucket share of successful probes (None: not probed there)."""
        names = [s.name for s in self.services]
        buckets = self.buckets(kind)
        rows: list[list[float | None]] = []
        for name in names:
            row: list[float | None] = []
            for b in buckets:
                p = self.point(b, isp)
                s = p.service(name) if p and method == DIRECT else None
                row.append(s.reachability if s and s.probes else None)
            rows.append(row)
        return names, buckets, rows

    def overall(self, bucket: Bucket) -> SubscriberView:
        """Every ISP's subscribers together in a bucket (weights as run.json gives them)."""
        summaries: dict[str, Summary] = {}
        weights: dict[str, float] = {}
        for isp in self.isps:
            p = self.point(bucket, isp)
            if p is not None:
                for host, summary in p.subscribers.summaries.items():
                    summaries[f"{isp}/{host}"] = summary
                    weights[f"{isp}/{host}"] = p.subscribers.weight(host)
        return SubscriberView(summaries, weights)

    def populations(self) -> list[str]:
        """Names of the populations the services belong to, in order of first mention."""
        return list(dict.fromkeys(s.population for s in self.services if s.population))

    def scenario_time(self, t_s: float) -> str:
        """How a report names a scenario time: the date with clock.start, else +<duration>."""
        if self.clock_start is not None:
            return (self.clock_start + timedelta(seconds=t_s)).strftime("%Y-%m-%d %H:%M")
        return format_duration(t_s)


def format_duration(t_s: float) -> str:
    s = round(t_s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v]
    return "+" + ("".join(parts) or "0s")


def parse_clock_start(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def services_from_meta(meta: dict[str, Any]) -> list[ServiceSpec]:
    """run.json's services as ServiceSpecs (users default to 1)."""
    out = []
    for s in meta.get("services") or []:
        if isinstance(s, dict) and isinstance(s.get("name"), str):
            out.append(
                ServiceSpec(
                    s["name"],
                    str(s.get("role", "innocent")),
                    int(s.get("users") or 1),
                    str(s.get("address", "")),
                    str(s.get("cloud", "")),
                    s.get("population") if isinstance(s.get("population"), str) else None,
                )
            )
    return out


def weights_from_meta(meta: dict[str, Any]) -> dict[str, dict[str, float]]:
    """run.json's subscriber weights: ISP -> host -> real subscribers it stands for."""
    out: dict[str, dict[str, float]] = {}
    for isp in meta.get("isps") or []:
        if isinstance(isp, dict) and isinstance(isp.get("weights"), dict):
            out[str(isp.get("name"))] = {str(h): float(w) for h, w in isp["weights"].items()}
    return out


def _t(record: dict[str, Any]) -> float:
    v = record.get("scenario_t_s")
    return float(v) if isinstance(v, int | float) else 0.0


def _is_probe(r: dict[str, Any]) -> bool:
    return r.get("kind") in PROBE_KINDS and isinstance(r.get("service"), str)


def _steps(probes: list[dict[str, Any]], events: list[Event]) -> list[Bucket]:
    starts: dict[str, float] = {}
    for e in events:
        starts.setdefault(e.label, e.t_s)
    for r in probes:
        label = str(r.get("step") or START_STEP)
        starts[label] = min(starts.get(label, _t(r)), _t(r))
    if START_STEP in starts:
        starts[START_STEP] = 0.0
    ordered = sorted(starts.items(), key=lambda kv: kv[1])
    return [
        Bucket("step", label, label, label, t, ordered[i + 1][1] if i + 1 < len(ordered) else None)
        for i, (label, t) in enumerate(ordered)
    ]


def _rounds(probes: list[dict[str, Any]]) -> list[tuple[Bucket, list[dict[str, Any]]]]:
    groups: list[list[dict[str, Any]]] = []
    last: tuple[str, Any] | None = None
    for r in probes:
        # Without a round number (0 or missing) the probe moment itself tells rounds apart.
        key = (str(r.get("step") or START_STEP), r.get("round") or ("t", _t(r)))
        if key != last:
            groups.append([])
            last = key
        groups[-1].append(r)
    starts = [min(_t(r) for r in g) for g in groups]
    out = []
    for i, g in enumerate(groups):
        end = starts[i + 1] if i + 1 < len(groups) else None
        step = str(g[0].get("step") or START_STEP)
        out.append((Bucket("round", str(i + 1), f"round {i + 1}", step, starts[i], end), g))
    return out


def _point(
    isp: str,
    bucket: Bucket,
    records: Iterable[dict[str, Any]],
    specs: dict[str, ServiceSpec],
    registry: list[RegistryPoint],
    target_addresses: set[str],
    degraded_below_kbps: float,
    weights: dict[str, float] | None = None,
) -> Point:
    cells: dict[str, ServiceSummary] = {}
    host_cells: dict[str, dict[str, ServiceSummary]] = {}
    point_circ: dict[tuple[str, str], list[int]] = {}
    goodputs: list[float] = []
    ttfbs: list[float] = []
    for r in records:
        name, method = r["service"], str(r.get("method") or DIRECT)
        role = str(r.get("role") or (specs[name].role if name in specs else "innocent"))
        ok = bool(r.get("ok"))
        kind = r.get("kind")
        if method != DIRECT:
            if kind in REACHABILITY_KINDS:
                c = point_circ.setdefault((method, name), [0, 0])
                c[0] += ok
                c[1] += 1
            continue
        spec = specs.get(name) or ServiceSpec(name, role, 1, "", "")
        host = str(r.get("subscriber") or "?")
        cell = cells.get(name)
        if cell is None:
            cell = cells[name] = _cell(spec, degraded_below_kbps)
        mine = host_cells.setdefault(host, {})
        host_cell = mine.get(name)
        if host_cell is None:
            host_cell = mine[name] = _cell(spec, degraded_below_kbps)
        if kind in THROUGHPUT_KINDS:
            kbps = (r.get("speed_download_bps") or 0.0) * 8 / 1000 if ok else 0.0
            cell.goodputs_kbps.append(kbps)
            host_cell.goodputs_kbps.append(kbps)
            goodputs.append(kbps)
            continue
        outcome = str(r.get("outcome", "?"))
        for counted in (cell, host_cell):
            counted.count(str(kind), ok, outcome)
        ttfb = r.get("time_starttransfer_s")
        if ok and isinstance(ttfb, int | float) and ttfb > 0:
            ttfbs.append(float(ttfb))
    in_effect = [
        p for p in registry if p.isp == isp and (bucket.end_s is None or p.t_s < bucket.end_s)
    ]
    reg = max(in_effect, key=lambda p: p.t_s) if in_effect else None
    summary = Summary(
        scenario=bucket.key,
        services=[c for c in cells.values() if c.probes],  # measured only
        blocked_addresses=reg.blocked_addresses if reg else 0,
        registry_prefixes=reg.prefixes if reg else 0,
        target_addresses=len(target_addresses),
    )
    per_host = {
        host: Summary(
            scenario=bucket.key,
            services=[c for c in mine.values() if c.probes],
            blocked_addresses=summary.blocked_addresses,
            registry_prefixes=summary.registry_prefixes,
            target_addresses=summary.target_addresses,
        )
        for host, mine in host_cells.items()
    }
    return Point(
        isp, bucket, summary, {m: (c[0], c[1]) for m, c in point_circ.items()},
        goodputs, ttfbs, reg, SubscriberView(per_host, dict(weights or {})),
    )  # fmt: skip


def _cell(spec: ServiceSpec, degraded_below_kbps: float) -> ServiceSummary:
    return ServiceSummary(
        spec.name, spec.role, spec.users, spec.address, spec.cloud,
        degraded_below_kbps=degraded_below_kbps, population=spec.population,
    )  # fmt: skip


def build_timeline(
    records: list[dict[str, Any]],
    services: list[ServiceSpec] | None = None,
    *,
    degraded_below_kbps: float = 1000.0,
    clock_start: datetime | None = None,
    weights: dict[str, dict[str, float]] | None = None,
) -> Timeline:
    """The campaign's metrics per ISP, per step and per probe round. Bad lines are skipped.

    `weights`: ISP -> subscriber host -> real subscribers it stands for (missing: 1)."""
    probes = [r for r in records if isinstance(r, dict) and _is_probe(r)]
    events = [
        Event(_t(r), str(r.get("label", "")), tuple(str(w) for w in r.get("what") or ()))
        for r in records
        if isinstance(r, dict) and r.get("kind") == "event"
    ]
    registry = [
        RegistryPoint(
            str(r.get("isp", "")),
            _t(r),
            int(r.get("blocked_addresses") or 0),
            int(r.get("prefixes") or 0),
            int(r.get("domains") or 0),
        )
        for r in records
        if isinstance(r, dict) and r.get("kind") == "registry"
    ]
    specs = {s.name: s for s in services or []}
    for r in probes:  # services that only the results name
        if r["service"] not in specs:
            specs[r["service"]] = ServiceSpec(
                r["service"], str(r.get("role", "innocent")), 1, "", ""
            )
    isps = sorted({str(r.get("isp") or "isp") for r in probes} | {p.isp for p in registry})
    target_addresses = {s.address for s in specs.values() if s.role == "target" and s.address}
    target_addresses |= {
        str(r["remote_ip"])
        for r in probes
        if r.get("role") == "target"
        and r.get("remote_ip")
        and (r.get("method") or DIRECT) == DIRECT
    }
    steps = _steps(probes, events)
    rounds = _rounds(probes)
    points: dict[tuple[str, str, str], Point] = {}

    def add(bucket: Bucket, group: list[dict[str, Any]]) -> None:
        for isp in isps:
            mine = [r for r in group if str(r.get("isp") or "isp") == isp]
            if mine or any(p.isp == isp for p in registry):
                points[(bucket.kind, bucket.key, isp)] = _point(
                    isp, bucket, mine, specs, registry, target_addresses, degraded_below_kbps,
                    (weights or {}).get(isp),
                )  # fmt: skip

    for step in steps:
        add(step, [r for r in probes if str(r.get("step") or START_STEP) == step.key])
    for bucket, group in rounds:
        add(bucket, group)
    table: dict[tuple[str, str], list[int]] = {}
    for r in probes:
        method = str(r.get("method") or DIRECT)
        if method == DIRECT or r.get("kind") not in REACHABILITY_KINDS:
            continue
        role = r.get("role") or specs[r["service"]].role
        if role == "target":
            c = table.setdefault((method, r["service"]), [0, 0])
            c[0] += bool(r.get("ok"))
            c[1] += 1
    return Timeline(
        isps=isps,
        services=list(specs.values()),
        steps=steps,
        rounds=[b for b, _ in rounds],
        points=points,
        registry=sorted(registry, key=lambda p: (p.isp, p.t_s)),
        events=sorted(events, key=lambda e: e.t_s),
        methods=sorted({m for m, _ in table}),
        circumvention_table={k: (v[0], v[1]) for k, v in table.items()},
        clock_start=clock_start,
        degraded_below_kbps=degraded_below_kbps,
    )
