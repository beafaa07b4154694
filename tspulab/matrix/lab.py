"""One lab of matrix cells, run inside its sandbox: bring up, probe every cell's trials, tear down.

Every trial is a fetch of `transfer_bytes` of the target's /bulk (more than the ~16 KB a
hosting-freeze connection lets through) through the method's own client, from the subscriber of
the ISP whose TSPU runs the cell's profile. After each trial the method's client in that host is
stopped, so the next trial starts a new one and the TSPU judges new flows: trials are
independent, which the success rate's interval assumes. `concurrency` cells are probed at a time
(a cell's trials one after another): a blocked cell mostly waits for its timeouts, so a lab
does not idle on it, but the timings of cells probed side by side share the machine.

After the probes the controller's verdict events are read back and attributed to cells by ISP
and server address: which protocol the engine saw and which rule acted.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tspulab.matrix.catalogue import (
    DIRECT,
    TARGET_SERVICE,
    isp_name,
    lab_scenario_text,
    method_addresses,
)
from tspulab.matrix.plan import Cell, LabUnit
from tspulab.matrix.records import (
    LabRecord,
    MatrixSpec,
    ResultsWriter,
    TrialRecord,
    VerdictRecord,
)


def _quiet(*_: object) -> None:
    pass


def run_lab(
    unit: LabUnit, spec: MatrixSpec, runs_dir: Path, results: Path, concurrency: int
) -> LabRecord:
    """Inside a sandbox: measure `unit`'s cells, appending each trial to `results` as it is
    measured; returns (and appends) the lab's record. A lab that cannot come up is a record with
    its error, and its cells stay unmeasured."""
    from tspulab.scenario.live import LiveLab

    writer = ResultsWriter(results)
    started = time.time()
    t0 = time.monotonic()
    profiles = unit.profiles
    isp_of = {p: isp_name(i) for i, p in enumerate(profiles, start=1)}
    scenario = lab_scenario(unit, spec, runs_dir)
    bringup_s: float | None = None
    run_dir: Path | None = None
    try:
        with LiveLab(scenario, runs_dir, log=_quiet) as live:
            run_dir = live.run_dir
            bringup_s = time.monotonic() - t0

            def cell_job(cell: Cell) -> None:
                _run_cell(live, cell, f"{isp_of[cell.profile]}-1", spec, unit.id, writer)

            with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
                # list(): a cell that raised re-raises here, once every cell has run
                list(pool.map(cell_job, _interleaved(unit.cells)))
            live.controller_stats()  # flushes the controller's event log
            for verdicts in cell_verdicts(live.run_dir, unit, isp_of):
                writer.write(verdicts)
    except Exception as exc:  # the lab's cells stay unmeasured; the record says why
        record = LabRecord(
            lab=unit.id, methods=unit.methods, profiles=profiles, started=started,
            bringup_s=bringup_s, wall_s=time.monotonic() - t0,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            run_dir=str(run_dir) if run_dir else None,
        )  # fmt: skip
        writer.write(record)
        return record
    record = LabRecord(
        lab=unit.id, methods=unit.methods, profiles=profiles, started=started,
        bringup_s=bringup_s, wall_s=time.monotonic() - t0, run_dir=str(run_dir),
    )  # fmt: skip
    writer.write(record)
    return record


def lab_scenario(unit: LabUnit, spec: MatrixSpec, runs_dir: Path) -> Any:
    """The lab's scenario, loaded and checked as any scenario file is."""
    from tspulab.scenario.schema import load_scenario_text

    text = lab_scenario_text(f"matrix-{unit.id}", unit.methods, unit.profiles, spec.timeout_s)
    return load_scenario_text(text, runs_dir / f"matrix-{unit.id}.yaml")


def _interleaved(cells: tuple[Cell, ...]) -> list[Cell]:
    """Profile-major order: the cells probed at the same time are of different methods, so one
    method's server does not take every concurrent probe."""
    return sorted(cells, key=lambda c: (c.profile, c.method))


def _run_cell(
    live: Any, cell: Cell, subscriber: str, spec: MatrixSpec, lab: str, writer: ResultsWriter
) -> None:
    host = live.host(subscriber)
    outcomes: list[str] = []
    for trial in range(1, spec.trials + 1):
        started = time.time()
        try:
            probe = live.probe(
                subscriber, TARGET_SERVICE, method=cell.method, timeout_s=spec.timeout_s,
                path="/bulk", range_bytes=spec.transfer_bytes,
                stamp={"matrix_profile": cell.profile, "trial": trial},
            )  # fmt: skip
            result = probe.to_json()
            extra = result.get("extra") or {}
            record = TrialRecord(
                method=cell.method, profile=cell.profile, trial=trial, lab=lab, ok=probe.ok,
                outcome=probe.outcome, ttfb_s=probe.time_starttransfer_s,
                goodput_bps=_goodput(result), size_bytes=int(result.get("size_download") or 0),
                total_s=probe.time_total_s, started=started,
                detail=str(extra.get("stderr") or "")[-300:],
            )  # fmt: skip
        except Exception as exc:  # a probe that could not run is a failed trial, said so
            record = TrialRecord(
                method=cell.method, profile=cell.profile, trial=trial, lab=lab, ok=False,
                outcome="probe-error", started=started, detail=f"{type(exc).__name__}: {exc}"[:300],
            )  # fmt: skip
        writer.write(record)
        outcomes.append(record.outcome.split(":")[0])
        if cell.method != DIRECT:
            live.methods.drop_client(cell.method, host)
    # A line per cell as it is done: a full matrix takes minutes.
    ok = outcomes.count("ok")
    print(
        f"  {lab}: {cell.key()} {ok}/{len(outcomes)} {' '.join(sorted(set(outcomes)))}", flush=True
    )


def _goodput(result: dict[str, Any]) -> float | None:
    """Bits per second of the body after its first byte, the same way for direct and method
    probes (`tspulab.methods.probe.goodput_bps`)."""
    from tspulab.methods.probe import goodput_bps

    if not result.get("ok"):
        return None
    size = int(result.get("size_download") or 0)
    return goodput_bps(size, result.get("time_starttransfer_s"), result.get("time_total_s"))


def cell_verdicts(run_dir: Path, unit: LabUnit, isp_of: dict[str, str]) -> list[VerdictRecord]:
    """The controller's verdicts on each cell's flows: at the cell's ISP, to its servers."""
    from tspulab.contracts import EVENTS_FILE, EventKind
    from tspulab.metrics.results import read_results

    events = read_results(run_dir / EVENTS_FILE)
    out = []
    for cell in unit.cells:
        addresses = set(method_addresses(cell.method))
        isp = isp_of[cell.profile]
        protocols: Counter[str] = Counter()
        actions: Counter[str] = Counter()
        for e in events:
            if e.get("event") != EventKind.VERDICT or e.get("tspu") != isp:
                continue
            flow = e.get("flow") or {}
            if flow.get("server") not in addresses:
                continue
            protocols[str(e.get("protocol"))] += 1
            verdict = e.get("verdict") or {}
            if verdict.get("action") not in (None, "allow"):
                actions[f"{verdict.get('rule')}:{verdict.get('action')}"] += 1
        out.append(
            VerdictRecord(
                method=cell.method,
                profile=cell.profile,
                lab=unit.id,
                protocols=dict(protocols),
                actions=dict(actions),
            )
        )
    return out
