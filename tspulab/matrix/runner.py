"""A matrix run on this machine: one shard's cells, `jobs` labs at a time, each in its own sandbox.

    tspulab matrix --shard 2/8 --jobs 2 -o out/
     ├ header -> out/matrix.jsonl
     ├ sandbox lab1 (methods a, c, e × every profile of the shard)  ┐ at most `jobs`
     ├ sandbox lab2 (methods b, d, f × ...)                           ┘ at a time
     ├ end    -> out/matrix.jsonl
     └ report -> out/report.html, out/junit.xml

Each lab appends its trials to the results file itself, as they are measured (one line, one
write), so a run killed midway keeps every finished trial; the labs' own run directories (the
controller's events, the tools' logs) are under `out/runs/`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tspulab.lab.sandbox import DEFAULT_TIMEOUT_S, start_sandbox
from tspulab.matrix.catalogue import (
    CatalogueError,
    missing_programs,
    settings_json,
)
from tspulab.matrix.lab import lab_scenario, run_lab
from tspulab.matrix.plan import Cell, LabUnit, Shard, all_cells, group_labs
from tspulab.matrix.records import (
    RESULTS_FILE,
    Footer,
    Header,
    LabRecord,
    MatrixSpec,
    ResultsWriter,
    TrialRecord,
    read_results,
)


@dataclass(frozen=True)
class RunOptions:
    jobs: int = 1
    """Labs at a time."""
    concurrency: int = 4
    """Cells probed at a time within a lab."""
    max_methods: int = 0
    """At most this many methods in one lab (0: split only by `jobs`)."""
    lab_timeout_s: float = DEFAULT_TIMEOUT_S


def plan_shard(spec: MatrixSpec, shard: Shard, options: RunOptions) -> list[LabUnit]:
    cells = shard.take(all_cells(spec.methods, spec.profiles))
    return group_labs(cells, options.jobs, options.max_methods)


def unmeasured(results: Path, unit: LabUnit) -> list[Cell]:
    """`unit`'s cells without any trial in the results file so far."""
    done = {(r.method, r.profile) for r in read_results(results) if isinstance(r, TrialRecord)}
    return [c for c in unit.cells if (c.method, c.profile) not in done]


def run_matrix(
    spec: MatrixSpec,
    shard: Shard,
    out_dir: Path,
    options: RunOptions = RunOptions(),
    log: Callable[[str], None] = print,
) -> Path:
    """Measure `shard` of the matrix into `out_dir/matrix.jsonl`; returns that path."""
    missing = missing_programs(spec.methods)
    if missing:
        raise CatalogueError(
            "not installed (scripts/setup.sh installs them): "
            + "; ".join(f"{m}: {', '.join(p)}" for m, p in missing.items())
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / RESULTS_FILE
    if results.exists():
        raise FileExistsError(f"{results} exists: give another --out, or remove it")
    units = plan_shard(spec, shard, options)
    for unit in units:  # a lab's scenario that does not load fails here, before any lab starts
        lab_scenario(unit, spec, out_dir / "runs")
    cells = [c.key() for u in units for c in u.cells]
    writer = ResultsWriter(results)
    started = time.time()
    t0 = time.monotonic()
    writer.write(
        Header(
            spec=spec,
            shard=str(shard),
            cells=tuple(cells),
            jobs=options.jobs,
            concurrency=options.concurrency,
            started=started,
            host=socket.gethostname(),
            catalogue=tuple(settings_json()),
        )
    )
    runs_dir = (out_dir / "runs").resolve()
    runs_dir.mkdir(exist_ok=True)
    log(
        f"matrix shard {shard}: {len(cells)} cells × {spec.trials} trial(s) in {len(units)} "
        f"lab(s), {options.jobs} at a time"
    )

    def one(unit: LabUnit) -> LabRecord:
        record = attempt(unit)
        if record.error:
            # A lab that failed (a tool that would not start on a loaded machine, a sandbox
            # killed from outside) gets one more try for the cells it did not measure.
            left = unmeasured(results, unit)
            if left:
                log(f"  {unit.id}: trying its {len(left)} unmeasured cell(s) again")
                record = attempt(LabUnit(f"{unit.id}-retry", tuple(left)))
        return record

    def attempt(unit: LabUnit) -> LabRecord:
        log(f"  {unit.id}: {len(unit.methods)} method(s) × {len(unit.profiles)} profile(s)")
        try:
            box = start_sandbox(
                run_lab, unit, spec, runs_dir, results.resolve(), options.concurrency
            )
            record: LabRecord = box.wait(options.lab_timeout_s)
        except Exception as exc:  # the sandbox itself failed: the lab's cells stay unmeasured
            record = LabRecord(
                lab=unit.id, methods=unit.methods, profiles=unit.profiles, started=time.time(),
                wall_s=0.0, error=f"{type(exc).__name__}: {exc}"[:2000],
            )  # fmt: skip
            writer.write(record)
        state = f"failed: {record.error}" if record.error else "done"
        log(f"  {unit.id} {state} in {record.wall_s:.0f} s")
        return record

    # Biggest labs first: the last lab to start is a short one.
    ordered = sorted(units, key=lambda u: -len(u.cells))
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        labs = list(pool.map(one, ordered))
    writer.write(Footer(finished=time.time(), wall_s=time.monotonic() - t0, labs=len(labs)))
    return results
