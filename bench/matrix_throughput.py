"""The matrix's cells per hour with 1, 2 and 4 labs at a time, measured in interleaved rounds.

Each run is `tspulab matrix` on the same small matrix (default 8 methods × 2 profiles × 1 trial:
16 cells) with `--jobs` 1, 2 or 4: the methods split over that many labs, each lab brought up in
its own sandbox. Every round runs each job count once, in a rotated order, so a drift in the
machine's load weighs on all of them; the figures are the wall time of a run (bring-up
included), cells per hour, and the ratio to one lab (min / median / max over rounds).

Run: ``.venv/bin/python bench/matrix_throughput.py [--rounds 2] [--jobs 1,2,4]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tspulab.matrix.merge import merge_records
from tspulab.matrix.outcomes import load_outcomes
from tspulab.matrix.plan import Shard
from tspulab.matrix.records import LabRecord, MatrixSpec, TrialRecord
from tspulab.matrix.report import build_report
from tspulab.matrix.runner import RunOptions, run_matrix

METHODS = "direct,ss-chacha20,trojan,wireguard,ssh,vmess,stunnel,http-connect"
PROFILES = "tspu-2022,vpn-protocols-2023"


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def one_run(spec: MatrixSpec, jobs: int, out: Path) -> dict[str, float]:
    started = time.monotonic()
    results = run_matrix(spec, Shard(1, 1), out, RunOptions(jobs=jobs), log=lambda _: None)
    wall = time.monotonic() - started
    records = merge_records([results])
    labs = [r for r in records if isinstance(r, LabRecord)]
    failed = [lab.error for lab in labs if lab.error]
    if failed:
        raise SystemExit(f"jobs={jobs}: a lab failed: {failed}")
    trials = [r for r in records if isinstance(r, TrialRecord)]
    report = build_report(records, load_outcomes())
    return {
        "wall": wall,
        "cells": len(report.cells),
        "cells_per_hour": len(report.cells) / wall * 3600,
        "bringup": statistics.median(lab.bringup_s or 0.0 for lab in labs),
        "ok": sum(t.ok for t in trials),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", default="1,2,4")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--profiles", default=PROFILES)
    parser.add_argument("--timeout", type=float, default=8.0)
    args = parser.parse_args()
    counts = [int(j) for j in args.jobs.split(",")]
    spec = MatrixSpec(
        methods=tuple(args.methods.split(",")), profiles=tuple(args.profiles.split(",")),
        trials=1, transfer_bytes=65536, timeout_s=args.timeout,
    )  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="tspulab-matrix-bench-"))
    rows: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    for r in range(args.rounds):
        order = counts[r % len(counts) :] + counts[: r % len(counts)]  # rotated each round
        for n in order:
            got = one_run(spec, n, base / f"r{r}-j{n}")
            rows[n].append(got)
            print(
                f"round {r + 1}: jobs {n}: {got['wall']:.0f} s, {got['cells_per_hour']:.0f} "
                f"cells/h, {got['ok']:.0f} trials ok",
                flush=True,
            )
    cells = rows[counts[0]][0]["cells"]
    print(f"\n{cells:.0f} cells ({len(spec.methods)} methods × {len(spec.profiles)} profiles × 1)")
    print("jobs | wall s (min / median / max) | cells/hour | × one lab | lab bring-up s")
    one = statistics.median(x["cells_per_hour"] for x in rows[counts[0]])
    for n in counts:
        walls = [x["wall"] for x in rows[n]]
        rates = [x["cells_per_hour"] for x in rows[n]]
        ratios = [x / one for x in rates]
        ups = [x["bringup"] for x in rows[n]]
        print(
            f"{n:>4} | {spread(walls)} | {spread(rates)} | {spread(ratios, '{:.2f}')} | "
            f"{spread(ups, '{:.1f}')}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
