"""A run's faults as they happen: inject on the scenario clock, watch traffic, repair, record.

`FaultRun` is the timeline's partner for the scenario's `faults:` (tspulab.scenario.faults) and
for what goes wrong on its own: a timeline step that cannot be applied (a registry push while the
controller is down, a registry file on a full disk) and the signal that ends a run (SIGTERM,
Ctrl-C). Each becomes `FaultRecord` lines in `faults.jsonl` (tspulab.contracts), written at once:

    injected   what was broken, when (scenario time)
    observed   what traffic did: new flows through the TSPU stopped (fail-closed, ovs-vswitchd),
               flowed again past the TSPU (fail-open), a service or the resolver stopped answering
    restored   the part started again (`for:`), with how long its restart took
    recovered  traffic as before the fault, seconds after the restore
    failed     an injection or a restore that could not be done, and why

Traffic is watched with one HTTPS fetch at a time (curl, 1 s timeout, each a new flow, so it
needs the TSPU's first-packet verdict) from a subscriber the TSPU covers, to a service that was
reachable just before the fault; times are the start of the first fetch that saw the change,
so they are good to about the fetch's timeout.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tspulab.contracts import FAULTS_FILE, FaultKind, FaultPhase, FaultRecord
from tspulab.lab.faults import FaultError, LabFaults
from tspulab.metrics.results import ResultWriter
from tspulab.scenario.faults import Fault, planned_faults
from tspulab.scenario.labrun import Interrupted

#: One watch fetch; a failed one costs this long, so it is also the time resolution.
CHECK_TIMEOUT_S = 1.0
#: How long to wait for traffic to change after a fault, or to come back after a restore.
WATCH_LIMIT_S = 60.0
#: How long to wait for the first failure after a fault that may stop traffic only briefly
#: (fail-open: new flows are lost until the switch has missed its controller's echo replies).
GAP_LIMIT_S = 8.0


def _cloud(cloud: str | None) -> str:
    assert cloud is not None, "kill-service names its cloud (tspulab.scenario.faults)"
    return cloud


#: What a fault's `(faults, cloud)` run: per kind, the injection and the repair once its `for:`
#: is over, both on the lab's `LabFaults`, each returning what it did in words.
Action = Callable[[LabFaults, str | None], str]
ACTIONS: dict[FaultKind, tuple[Action, Action]] = {
    FaultKind.KILL_CONTROLLER: (
        lambda f, _: f.kill_controller(),
        lambda f, _: f.restart_controller(),
    ),
    FaultKind.KILL_OVS: (lambda f, _: f.kill_ovs(), lambda f, _: f.restart_ovs()),
    FaultKind.KILL_SERVICE: (
        lambda f, c: f.kill_service(_cloud(c)),
        lambda f, c: f.restart_service(_cloud(c)),
    ),
    FaultKind.KILL_DNS: (lambda f, _: f.kill_dns(), lambda f, _: f.restart_dns()),
    FaultKind.FILL_DISK: (lambda f, _: f.fill_disk(), lambda f, _: f.free_disk()),
}


@dataclass
class Injected:
    """A fault in progress: when it was injected, what is watched, and its watch thread."""

    fault: Fault
    cloud: str | None
    t: float
    started: float
    watch: tuple[str, str] | None = None
    """(subscriber, service) whose fetches are watched; None: nothing reachable to watch."""
    blocked: tuple[str, str] | None = None
    """fail-open: (subscriber, target) the TSPU blocked just before (the bypass lets it through)."""
    restored: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)


class FaultRun:
    """Injects a scenario's faults on a live lab and records every fault of the run."""

    def __init__(self, live: Any, stamp: Callable[[float], dict[str, Any]]) -> None:
        self.live = live
        self.stamp = stamp
        self.planned = planned_faults(live.scenario)
        self.writer = ResultWriter(live.run_dir / FAULTS_FILE)
        self._lock = threading.Lock()
        self.active: dict[tuple[str, str | None], Injected] = {}
        self.done: list[Injected] = []
        self.clock_started: float | None = None
        self.timeline_ended = False
        self.records: list[FaultRecord] = []
        self._refusing = False
        live.writer.on_error = self._results_refused

    # --- the timeline's side --------------------------------------------------------------

    def events(self) -> list[tuple[float, str, tuple[Fault, str | None]]]:
        """(scenario second, "fault" or "fault-end", (fault, cloud)) for the timeline's heap."""
        out = []
        for at, fault, cloud in self.planned:
            out.append((at, "fault", (fault, cloud)))
            if fault.for_s is not None:
                out.append((at + fault.for_s, "fault-end", (fault, cloud)))
        return out

    def scenario_now(self) -> float | None:
        if self.clock_started is None:
            return None
        return (time.monotonic() - self.clock_started) * float(self.live.speed)

    def write(
        self,
        kind: FaultKind | str,
        phase: FaultPhase,
        detail: str,
        *,
        target: str | None = None,
        t: float | None = None,
        after_s: float | None = None,
        measured: dict[str, float] | None = None,
    ) -> FaultRecord:
        record = FaultRecord(
            fault=FaultKind(kind),
            phase=phase,
            target=target,
            wall_time=time.time(),
            scenario_t_s=t if t is not None else self.scenario_now(),
            after_s=None if after_s is None else round(after_s, 3),
            detail=detail,
            measured={k: round(v, 3) for k, v in (measured or {}).items()},
        )
        with self._lock:
            self.records.append(record)
            self.writer.write(record.line())
        self.live.log(f"  fault {record.fault} {record.phase}: {detail}")
        return record

    def inject(self, t: float, payload: tuple[Fault, str | None]) -> None:
        fault, cloud = payload
        kind = FaultKind(fault.kind)
        faults = self.live.faults
        watch = self._choose_watch(fault, cloud)
        blocked = self._choose_blocked(watch) if self._fail_open(fault, watch) else None
        started = time.monotonic()
        # Stamped when it happens: choosing what to watch (a fetch or two) comes first.
        t = max(t, self.scenario_now() or t)
        try:
            detail = ACTIONS[kind][0](faults, cloud)
        except (FaultError, OSError, subprocess.SubprocessError) as err:
            self.write(kind, FaultPhase.FAILED, f"not injected: {err}", target=cloud, t=t)
            return
        self.write(kind, FaultPhase.INJECTED, detail, target=cloud, t=t)
        injected = Injected(fault, cloud, t, started, watch, blocked)
        self.active[(fault.kind, cloud)] = injected
        self._spawn(injected, self._observe)

    def end(self, t: float, payload: tuple[Fault, str | None]) -> None:
        """`for` is over: start the part again (free the space) and watch traffic come back."""
        fault, cloud = payload
        injected = self.active.pop((fault.kind, cloud), None)
        if injected is None:
            return  # never injected (its failure is recorded)
        kind = FaultKind(fault.kind)
        injected.restored.set()
        faults = self.live.faults
        began = time.monotonic()
        t = max(t, self.scenario_now() or t)  # when it happens (the timeline may be late)
        try:
            detail = ACTIONS[kind][1](faults, cloud)
            if kind is FaultKind.FILL_DISK:  # room again: what the writers held goes out now
                held = self.live.writer.held
                if self.live.writer.flush() and held:
                    detail += f"; {held} result line(s) held in memory written"
                    self._refusing = False
                self.writer.flush()
        except (FaultError, OSError, subprocess.SubprocessError) as err:
            self.write(kind, FaultPhase.FAILED, f"not restored: {err}", target=cloud, t=t)
            self.done.append(injected)
            return
        restored = time.monotonic()
        self.write(
            kind, FaultPhase.RESTORED, detail, target=cloud, t=t,
            after_s=restored - injected.started, measured={"restart_s": restored - began},
        )  # fmt: skip
        self.done.append(injected)
        self._spawn(injected, lambda i: self._recover(i, began))

    def step_failed(self, t: float, what: str, err: BaseException) -> None:
        """A timeline step that could not be applied; the run goes on without it."""
        down = self.live.faults.reasons()
        why = f" ({'; '.join(down)})" if down else ""
        self.write(FaultKind.STEP_FAILED, FaultPhase.FAILED, f"{what}: {err}{why}", t=t)

    def interrupted(self, exc: BaseException) -> None:
        """The run was ended by a signal; it was torn down and what was measured is kept."""
        kind = FaultKind.SIGTERM if isinstance(exc, Interrupted) else FaultKind.SIGINT
        for injected in [*self.active.values(), *self.done]:
            injected.restored.set()  # the watches end with the lab
        if self.clock_started is None:
            doing = "bring-up"
        elif not self.timeline_ended:
            doing = "the timeline"
        else:
            doing = "the end of the run (bulk transfer, counters)"
        self.write(
            kind,
            FaultPhase.INJECTED,
            f"run interrupted by {kind.upper()} during {doing}: the lab was torn down; "
            f"{self.live.writer.count - self.live.writer.held} result line(s) were written before",
        )

    def _results_refused(self, err: OSError, held: int) -> None:
        """results.jsonl refused a write: said once per spell (the lines wait in memory)."""
        if self._refusing:
            return
        self._refusing = True
        self.write(
            FaultKind.WRITE_FAILED,
            FaultPhase.FAILED,
            f"results.jsonl refused a line ({err.strerror}): {held} line(s) held in memory "
            "until there is room",
        )

    def finish(self, limit_s: float = 30.0) -> None:
        """At the end of the timeline: let the watches end (bounded), and record what the lab's
        teardown preparation had to do (ovs-vswitchd started again, space freed)."""
        self.timeline_ended = True
        deadline = time.monotonic() + limit_s
        for injected in [*self.active.values(), *self.done]:
            injected.restored.set()  # a fault lasting to the end: stop waiting for a change
            for thread in injected.threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        for note in self.live.faults.teardown_notes:
            kind = FaultKind.KILL_OVS if "vswitchd" in note else FaultKind.FILL_DISK
            self.write(kind, FaultPhase.RESTORED, note)
        self.live.faults.teardown_notes = []
        lost = self.live.writer.held  # the results file is closed by now: these never made it
        if lost:
            self.write(
                FaultKind.WRITE_FAILED,
                FaultPhase.FAILED,
                f"{lost} result line(s) could not be written to results.jsonl: "
                f"{self.live.writer.error}",
            )
        self.writer.close()

    # --- watching traffic -------------------------------------------------------------------

    def _spawn(self, injected: Injected, fn: Callable[[Injected], None]) -> None:
        def watch() -> None:
            try:
                fn(injected)
            except Exception as err:  # a watch that breaks (the lab torn down) ends quietly
                with contextlib.suppress(Exception):
                    self.live.log(f"  fault watch ended: {err!r}")

        thread = threading.Thread(target=watch, daemon=True, name="fault-watch")
        injected.threads.append(thread)
        thread.start()

    def _choose_watch(self, fault: Fault, cloud: str | None) -> tuple[str, str] | None:
        """A subscriber the first ISP's TSPU covers and a service it reaches right now (in the
        killed nginx's cloud for kill-service)."""
        live = self.live
        if fault.kind == "fill-disk":
            return None
        isp = live.isps[0].name
        subs = [s for s, owner in live.isp_of_host.items() if owner == isp]
        sub = subs[-1]  # uncovered subscribers (partial coverage) are the first ones
        services = [s for s in live.scenario.services if s.role == "innocent"]
        services += [s for s in live.scenario.services if s.role == "target"]
        if cloud is not None:
            services = [s for s in services if live._cloud_of(live.addresses[s.name]) == cloud]
        for spec in services[:4]:
            if self.fetch_ok(sub, spec.name, resolve=fault.kind == "kill-dns"):
                return sub, spec.name
        return None

    def _fail_open(self, fault: Fault, watch: tuple[str, str] | None) -> bool:
        if fault.kind != "kill-controller" or watch is None:
            return False
        return bool(self.live.fail_modes[self.live.isp_of_host[watch[0]]] == "open")

    def _choose_blocked(self, watch: tuple[str, str] | None) -> tuple[str, str] | None:
        """A target the watched subscriber cannot reach now (the TSPU blocks it)."""
        if watch is None:
            return None
        sub = watch[0]
        for spec in [s for s in self.live.scenario.services if s.role == "target"][:3]:
            if not self.fetch_ok(sub, spec.name):
                return sub, spec.name
        return None

    def fetch_ok(self, subscriber: str, service: str, *, resolve: bool = False) -> bool:
        """One HTTPS fetch of the service's page; `resolve`: look its name up with the lab's
        resolver (else the address is given, so only the path is tested)."""
        live = self.live
        domain = live.scenario.service(service).domains[0]
        timeout = CHECK_TIMEOUT_S * (3 if resolve else 1)  # a lookup retries once after 1 s
        argv = [
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", f"{timeout:g}",
            "--cacert", str(live.ca.ca_path), "--noproxy", "*",
        ]  # fmt: skip
        if not resolve:
            argv += ["--resolve", f"{domain}:443:{live.addresses[service]}"]
        proc = live.host(subscriber).popen(
            [*argv, f"https://{domain}/"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            out, _ = proc.communicate(timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return False
        return bool(proc.returncode == 0 and out.strip() == b"200")

    def _wait_for(
        self,
        injected: Injected,
        ok: bool,
        limit_s: float,
        stop: bool,
        pair: tuple[str, str] | None = None,
    ) -> float | None:
        """Seconds from the fault's injection to the start of the first fetch (of `pair`, by
        default the watched one) whose outcome is `ok`; None if not within `limit_s` (or, with
        `stop`, once the fault is restored)."""
        pair = pair or injected.watch
        assert pair is not None
        sub, service = pair
        deadline = time.monotonic() + limit_s
        resolve = injected.fault.kind == "kill-dns"
        while time.monotonic() < deadline and not (stop and injected.restored.is_set()):
            began = time.monotonic()
            if self.fetch_ok(sub, service, resolve=resolve) == ok:
                return began - injected.started
            time.sleep(max(0.0, 0.2 - (time.monotonic() - began)))
        return None

    def _observe(self, injected: Injected) -> None:
        fault, cloud = injected.fault, injected.cloud
        kind = FaultKind(fault.kind)
        if kind is FaultKind.FILL_DISK:
            self._observe_disk(injected)
            return
        if injected.watch is None:
            self.write(kind, FaultPhase.OBSERVED, "nothing reachable to watch", target=cloud)
            return
        sub, service = injected.watch
        what = f"fetches from {sub} to {service}"
        if kind is FaultKind.KILL_DNS:
            what = f"fetches by name from {sub} to {service}"
        fail_open = self._fail_open(fault, injected.watch)
        stopped = self._wait_for(
            injected, False, GAP_LIMIT_S if fail_open else WATCH_LIMIT_S, stop=True
        )
        measured: dict[str, float] = {}
        if stopped is None:
            detail = f"{what} never failed while it lasted"
            if kind is FaultKind.KILL_CONTROLLER and not fail_open:
                detail += " (no verdict needed: the profile's rules are all in the switch)"
        else:
            measured["stopped_after_s"] = stopped
            detail = f"{what} failed from {stopped:.2f} s after the fault"
        if fail_open:
            flows = self._wait_for(injected, True, WATCH_LIMIT_S, stop=True)
            if flows is None:
                detail += "; the fail-open bypass never let them through"
            else:
                measured["flows_after_s"] = flows
                detail += (
                    f"; they pass again {flows:.2f} s after it (fail-open: the switch forwards "
                    "on its own, without inspection)"
                )
            if injected.blocked is not None:
                target = injected.blocked[1]
                bypass = self._wait_for(injected, True, WATCH_LIMIT_S, True, injected.blocked)
                if bypass is None:
                    detail += f"; {target}, blocked before, stays unreachable"
                else:
                    measured["bypass_after_s"] = bypass
                    detail += f"; {target}, blocked before, is reachable {bypass:.2f} s after it"
        elif kind is FaultKind.KILL_CONTROLLER and stopped is not None:
            detail += " (fail-closed: new flows get no verdict)"
        after = measured.get("flows_after_s", measured.get("stopped_after_s"))
        self.write(
            kind, FaultPhase.OBSERVED, detail, target=cloud, after_s=after, measured=measured,
            t=self._when(injected, after),
        )  # fmt: skip

    def _when(self, injected: Injected, after_s: float | None) -> float | None:
        """Scenario time of what was seen `after_s` real seconds after the injection (records
        are written when the watch ends, which may be later on a loaded machine)."""
        if after_s is None:
            return None
        return injected.t + after_s * float(self.live.speed)

    def _observe_disk(self, injected: Injected) -> None:
        probe = self.live.run_dir / ".fault-write-check"
        try:
            probe.write_bytes(b"x" * 4096)
        except OSError as err:
            detail = f"writes to the run directory fail: {err.strerror}"
        else:
            detail = "writes to the run directory still succeed"
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        after = time.monotonic() - injected.started
        self.write(
            FaultKind.FILL_DISK, FaultPhase.OBSERVED, detail, after_s=after,
            t=self._when(injected, after),
        )  # fmt: skip

    def _recover(self, injected: Injected, restored: float) -> None:
        """Traffic as before, timed from the start of the restore (`restored`): the restart and
        whatever the switches need after it."""
        kind = FaultKind(injected.fault.kind)
        if kind is FaultKind.FILL_DISK or injected.watch is None:
            return
        sub, service = injected.watch
        back = self._wait_for(injected, True, WATCH_LIMIT_S, stop=False)
        measured: dict[str, float] = {}
        blocking = ""
        if injected.blocked is not None:
            again = self._wait_for(injected, False, WATCH_LIMIT_S, False, injected.blocked)
            if again is None:
                blocking = f"; {injected.blocked[1]} is still not blocked again"
            else:
                since = max(0.0, again - (restored - injected.started))
                measured["blocking_back_after_s"] = since
                blocking = f"; {injected.blocked[1]} is blocked again {since:.2f} s after it began"
        if back is None:
            detail = f"fetches from {sub} to {service} still fail {WATCH_LIMIT_S:g} s after it"
            self.write(
                kind, FaultPhase.RECOVERED, detail + blocking, target=injected.cloud,
                measured=measured,
            )  # fmt: skip
            return
        since_restore = max(0.0, back - (restored - injected.started))
        measured["recovered_after_s"] = since_restore
        self.write(
            kind,
            FaultPhase.RECOVERED,
            f"fetches from {sub} to {service} pass again {since_restore:.2f} s after the restore "
            "began" + blocking,
            target=injected.cloud,
            after_s=back,
            measured=measured,
            t=self._when(injected, back),
        )
