"""The timeline of a run: its entries, per-ISP registry updates with their delays, probe rounds.

Every scenario runs through this (a scenario without `timeline` has one probe moment, at 0).

Time: the scenario clock runs `clock.speed` scenario seconds per real second. Events are due at
their scenario time; probe rounds take the real time they need, and when the run falls behind the
clock, events are applied as soon as possible, in order, still stamped with their scheduled
scenario time (the report shows scenario time). Profile timers in the TSPUs are scaled by the same
speed (the engine's `time_scale`), so a 10-minute idle expiry lasts 10 scenario minutes.

Every measurement goes to results.jsonl as it is taken (contract: /docs/report.md): probe lines
with isp, method, scenario time and step; registry lines when a registry version takes effect at
an ISP; event lines for timeline entries.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry
from tspulab.metrics.progress import Progress
from tspulab.scenario.build import registry_from_sources
from tspulab.scenario.compliant_exit import apply_exit_filter
from tspulab.scenario.fault_run import FaultRun
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario, TimelineEntry
from tspulab.scenario.oldfilter_lab import filter_registry, push_filter_registry

#: Probes of one round run side by side; each is a curl process in a subscriber namespace.
PARALLEL_PROBES = 12


def registry_without(registry: Registry, removal: Registry) -> Registry:
    """`registry` minus the entries (addresses and domain rules) listed in `removal`."""
    gone_nets = {str(e.network) for e in removal.address_entries()}
    gone_rules = {(r.kind, r.name) for r in removal.domain_rules()}
    out = Registry()
    for e in registry.address_entries():
        if str(e.network) not in gone_nets:
            out.add_address(str(e.network), source=e.source)
    for r in registry.domain_rules():
        if (r.kind, r.name) not in gone_rules:
            out.add_domain(r.pattern, MatchKind(r.kind), source=r.source)
    return out


def _copy(registry: Registry) -> Registry:
    return Registry().merge(registry)


class TimelineRun:
    """Runs a scenario's timeline on a live lab, on the scenario clock."""

    def __init__(self, lab: LiveLab, progress: Progress | None = None) -> None:
        self.lab = lab
        self.scenario: Scenario = lab.scenario
        self.published = _copy(lab.registry)
        self.methods: list[str] = []
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._seq = itertools.count()
        self.lateness_s = 0.0
        self.progress = progress
        self._write_lock = threading.Lock()
        self.rounds = 0
        self._filter_versions = 0
        #: the scenario's `faults:` and every step that fails (faults.jsonl)
        self.faults = FaultRun(lab, self._stamp)

    def _push(self, t: float, order: int, kind: str, payload: Any) -> None:
        heapq.heappush(self._heap, (t, order, next(self._seq), kind, payload))

    def _stamp(self, t: float) -> dict[str, Any]:
        clock = self.scenario.clock
        return {
            "scenario_t_s": t,
            "scenario_time": clock.iso(t) if clock is not None else None,
            "step": self.scenario.step_at(t),
        }

    def _registry_line(self, isp: str, t: float, registry: Registry) -> None:
        self.lab.writer.write(
            {
                "kind": "registry",
                "isp": isp,
                **self._stamp(t),
                "blocked_addresses": registry.address_count(4) + registry.address_count(6),
                "prefixes": len(registry.aggregated_prefixes()),
                "domains": registry.domain_count(),
            }
        )

    def run(self) -> None:
        for isp in self.lab.isps:
            self._registry_line(isp.name, 0.0, self.published)
            if isp.old_filter is not None:
                self._filter_registry(0.0, isp.name, self.published, push=False)
        self._filter_exits()
        for entry in self.scenario.timeline:
            self._push(entry.at_s, 0, "entry", entry)
        for t in self.scenario.probe_times():
            self._push(t, 2, "probe", None)
        for t, kind, payload in self.faults.events():
            self._push(t, 0, kind, payload)
        speed = self.lab.speed
        start = time.monotonic()
        self.faults.clock_started = start
        while self._heap:
            t, _, _, kind, payload = heapq.heappop(self._heap)
            due = start + t / speed
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                self.lateness_s = max(self.lateness_s, now - due)
            if kind == "entry":
                try:
                    self._apply_entry(t, payload)
                except (OSError, ValueError) as err:  # a dead controller or resolver, a full disk
                    self.faults.step_failed(t, f"timeline entry {payload.label!r}", err)
            elif kind == "registry":
                isp, registry = payload
                try:
                    reply = self.lab.push_registry(registry, isp=isp)
                except (OSError, ValueError) as err:
                    # a restarted controller loads the newest version written (lab.faults)
                    self.faults.step_failed(t, f"registry version for {isp} not applied", err)
                    continue
                self._registry_line(isp, t, registry)
                self.lab.log(
                    f"  registry → {isp}: +{reply.get('added')} −{reply.get('removed')} "
                    f"prefixes ({registry.address_count(4):,} addresses)"
                )
            elif kind == "old-filter-registry":
                self._filter_registry(t, *payload)
            elif kind == "probe":
                self._probe_round(t)
            elif kind == "fault":
                self.faults.inject(t, payload)
            elif kind == "fault-end":
                self.faults.end(t, payload)
        self.faults.finish()

    def _filter_registry(
        self, t: float, isp: str, published: Registry, *, push: bool = True
    ) -> None:
        """An ISP's old filter takes its copy of `published` (at the start: the list it was
        configured with); results.jsonl gets an `old-filter-registry` line."""
        listed = filter_registry(self.scenario, self.scenario.isp(isp), published)
        if push:
            self._filter_versions += 1
            push_filter_registry(
                self.lab.run_dir, self.scenario, isp, self._filter_versions, published
            )
            self.lab.log(f"  registry → {isp}'s old filter: {listed.domain_count():,} names")
        self.lab.writer.write(
            {"kind": "old-filter-registry", "box": "old-filter", "isp": isp, **self._stamp(t),
             "domains": listed.domain_count()}
        )  # fmt: skip

    def _apply_entry(self, t: float, entry: TimelineEntry) -> None:
        label = str(entry.label)
        if self.progress is not None:
            clock = self.scenario.clock
            self.progress.stage(label, clock.iso(t) if clock is not None else None)
        else:
            self.lab.log(f"[{label}] {', '.join(entry.what())}")
        self.lab.writer.write(
            {"kind": "event", **self._stamp(t), "label": label, "what": list(entry.what())}
        )
        if entry.registry_add or entry.registry_remove:
            new = _copy(self.published)
            if entry.registry_add:
                new.merge(registry_from_sources(self.scenario, entry.registry_add, label))
            if entry.registry_remove:
                new = registry_without(
                    new, registry_from_sources(self.scenario, entry.registry_remove, label)
                )
            self.published = new
            self._filter_exits()
            for isp in self.lab.isps:
                self._push(t + isp.update_delay_s, 1, "registry", (isp.name, _copy(new)))
            for isp in self.lab.isps:
                if isp.old_filter is not None and isp.old_filter.registry is None:
                    # the ISP's old filter copies the same change, `lag` after its TSPU
                    at = t + isp.update_delay_s + isp.old_filter.lag_s
                    self._push(at, 1, "old-filter-registry", (isp.name, _copy(new)))
        if entry.profile is not None:
            for isp in self.lab.isps:
                if entry.profile.isp in (None, isp.name):
                    self.lab.set_profile(entry.profile.name, isp=isp.name)
        if entry.move_service is not None:
            self.lab.move_service(entry.move_service.service, str(entry.move_service.address))
        if entry.circumvention is not None:
            change = entry.circumvention
            for name in change.stop:
                # its users' clients end: starting it again later makes new connections
                self.lab.methods.drop_clients(name, self.lab.lab.host)
            self.methods = [m for m in self.methods if m not in change.stop]
            self.methods += [m for m in change.start if m not in self.methods]

    def _filter_exits(self) -> None:
        """Methods that comply with the law drop the published registry at their exit at once
        (tspulab.scenario.compliant_exit; no ISP update delay)."""
        for m in self.scenario.circumvention:
            if m.applies_registry and m.cloud is not None:
                directory = self.lab.run_dir / "methods" / m.name
                n = apply_exit_filter(self.lab.host(m.cloud), m.name, self.published, directory)
                self.lab.log(f"  exit filter of {m.name}: {n} registry prefixes dropped")

    def _probe_round(self, t: float) -> None:
        """`probes.rounds` rounds of every (subscriber, service, method) probe, each round run
        in parallel (each probe is its own curl in its own namespace), each result written as
        soon as it is measured."""
        scenario = self.scenario
        for n in range(scenario.probes.rounds):
            if n and scenario.probes.interval_s:
                time.sleep(scenario.probes.interval_s)
            self.rounds += 1
            stamp = {**self._stamp(t), "round": self.rounds}
            # ttfb is measured by every https probe (time_starttransfer_s); the other kinds run
            # direct only: a circumvention method is a way to reach a target over HTTPS.
            kinds = [k for k in scenario.probes.kinds if k != "ttfb"] or ["https"]
            jobs = [
                (sub, service.name, method, kind)
                for sub in scenario.probe_subscribers()
                for service in scenario.services
                for kind in kinds
                for method in ["direct"]
                + (
                    [m for m in self.methods if uses(scenario, m, sub, service.name)]
                    if kind == "https"
                    else []
                )
            ]
            with ThreadPoolExecutor(max_workers=PARALLEL_PROBES) as pool:
                futures = [pool.submit(self._probe_one, job, stamp) for job in jobs]
                for future in futures:
                    future.result()

    def _probe_one(self, job: tuple[str, str, str, str], stamp: dict[str, Any]) -> None:
        sub, service, method, kind = job
        result = self.lab.probe(
            sub, service, method=method, kind=kind, round_no=stamp["round"], record=False
        )
        record = {
            **result.to_json(), "isp": self.lab.isp_of_host[sub], "method": method, **stamp
        }  # fmt: skip
        with self._write_lock:
            self.lab.writer.write(record)
            if self.progress is not None:
                self.progress.probe_done(record)
        transfer_bytes = self.scenario.probes.transfer_bytes
        if transfer_bytes and result.ok and method == "direct" and kind == "https":
            self.lab.probe(
                sub, service, path="/bulk", range_bytes=transfer_bytes, round_no=stamp["round"],
                record=True, stamp=stamp,
            )  # fmt: skip


def uses(scenario: Scenario, method: str, subscriber: str, service: str) -> bool:
    """Whether `subscriber` reaches `service` through `method`: the method's `subscribers`
    (default every one) and `services` (default the targets)."""
    m = scenario.method(method)
    if m.subscribers is not None and subscriber not in m.subscribers:
        return False
    if m.services is not None:
        return service in m.services
    return scenario.service(service).role == "target"


def planned_probes(scenario: Scenario) -> int:
    """How many probes the run will make (direct, plus each active method's users' services)."""
    subs = scenario.probe_subscribers()
    total = 0
    kinds = len([k for k in scenario.probes.kinds if k != "ttfb"]) or 1
    for t in scenario.probe_times():
        active: list[str] = []
        for entry in scenario.timeline:
            if entry.at_s <= t and entry.circumvention is not None:
                active = [m for m in active if m not in entry.circumvention.stop]
                active += [m for m in entry.circumvention.start if m not in active]
        through = sum(
            uses(scenario, m, sub, s.name)
            for m in active
            for sub in subs
            for s in scenario.services
        )
        total += len(subs) * kinds * len(scenario.services) + through
    return total * scenario.probes.rounds


#: Probe kinds the language accepts but the runner cannot run yet.
NOT_IMPLEMENTED_KINDS = ("quic", "iperf3")


class NotImplementedInRunner(ValueError):
    pass


def check_runnable(scenario: Scenario) -> None:
    """Refuse, before anything is brought up, what the language accepts but the runner does not
    do yet, rather than silently doing less than the file says."""
    missing = [k for k in scenario.probes.kinds if k in NOT_IMPLEMENTED_KINDS]
    if missing:
        raise NotImplementedInRunner(
            f"{scenario.path}: probes.kinds: {', '.join(missing)} not implemented yet "
            "(https, http, dns, ping and ttfb are)"
        )
