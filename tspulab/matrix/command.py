"""`tspulab matrix` and `tspulab merge`: arguments, and the hand-over to the runner and report."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from tspulab.matrix.catalogue import (
    BY_NAME,
    DEFAULT_METHODS,
    DEFAULT_PROFILES,
    DIRECT,
    CatalogueError,
    check_methods,
    check_profiles,
)
from tspulab.matrix.outcomes import OutcomesError, OutcomeTable, load_outcomes
from tspulab.matrix.plan import Shard
from tspulab.matrix.records import MatrixSpec, Record, ResultsError

EXIT_OK, EXIT_FAILED, EXIT_DISAGREES = 0, 1, 3


def _names(text: str, every: tuple[str, ...]) -> list[str]:
    if text == "all":
        return list(every)
    return [n.strip() for n in text.split(",") if n.strip()]


def add_matrix_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS),
        help="comma-separated method settings, or 'all' (default: one of each tool family and "
        "the direct control; docs/matrix.md lists them)",
    )  # fmt: skip
    p.add_argument(
        "--profiles", default=",".join(DEFAULT_PROFILES),
        help="comma-separated behaviour profiles, or 'all' (default: the seven of the README)",
    )  # fmt: skip
    p.add_argument("--trials", type=int, default=1, help="probes per cell, each a new client")
    p.add_argument("--shard", default="1/1", help="run slice i of N (1-based), e.g. 2/8")
    p.add_argument("--jobs", type=int, default=1, help="labs at a time on this machine")
    p.add_argument("--concurrency", type=int, default=4, help="cells probed at a time in a lab")
    p.add_argument(
        "--max-methods-per-lab", type=int, default=0,
        help="split labs further so none holds more methods (0: split by --jobs only)",
    )  # fmt: skip
    p.add_argument(
        "--transfer-bytes", type=int, default=65536,
        help="bytes each probe fetches (more than the ~16 KB a hosting freeze lets through)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=15.0, help="seconds a probe may take")
    p.add_argument("-o", "--out", help="output folder (default runs/matrix-<time>)")
    p.add_argument(
        "--outcomes", type=Path,
        help="§6 outcomes file to compare with (default: circumvention-outcomes.yaml of the "
        "reference data folder)",
    )  # fmt: skip
    p.add_argument("--plan", action="store_true", help="print the shard's labs and cells, run none")
    p.add_argument(
        "--fail-on-disagreement", action="store_true",
        help=f"exit {EXIT_DISAGREES} when a cell disagrees with its §6 record",
    )  # fmt: skip


def add_merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", type=Path, help="shards' matrix.jsonl files or folders")
    p.add_argument("-o", "--out", required=True, type=Path, help="folder for the merged matrix")
    p.add_argument(
        "--outcomes", type=Path,
        help="§6 outcomes file to compare with (default: circumvention-outcomes.yaml of the "
        "reference data folder)",
    )  # fmt: skip
    p.add_argument(
        "--fail-on-disagreement", action="store_true",
        help=f"exit {EXIT_DISAGREES} when a cell disagrees with its §6 record",
    )  # fmt: skip


def spec_from_args(args: argparse.Namespace) -> MatrixSpec:
    from tspulab.dpi.profile import profile_names

    methods = check_methods(_names(args.methods, (DIRECT, *BY_NAME)))
    profiles = check_profiles(_names(args.profiles, tuple(profile_names())))
    if not methods or not profiles:
        raise CatalogueError("a matrix needs at least one method and one profile")
    for flag, value in (("--trials", args.trials), ("--transfer-bytes", args.transfer_bytes)):
        if value < 1:
            raise CatalogueError(f"{flag} {value}: at least 1")
    if args.timeout <= 0:
        raise CatalogueError(f"--timeout {args.timeout:g}: more than 0 seconds")
    return MatrixSpec(
        methods=methods, profiles=profiles, trials=args.trials,
        transfer_bytes=args.transfer_bytes, timeout_s=args.timeout,
    )  # fmt: skip


def matrix_cli(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from tspulab.matrix.merge import merge_records
    from tspulab.matrix.runner import RunOptions, plan_shard, run_matrix

    try:
        spec = spec_from_args(args)
        shard = Shard.parse(args.shard)
        outcomes = load_outcomes(args.outcomes)
        if args.jobs < 1 or args.concurrency < 1:
            raise ValueError("--jobs and --concurrency are at least 1")
    except (CatalogueError, ValueError, ValidationError, OutcomesError) as err:
        print(f"tspulab matrix: {err}", file=sys.stderr)
        return 2
    options = RunOptions(
        jobs=args.jobs, concurrency=args.concurrency, max_methods=args.max_methods_per_lab
    )
    if args.plan:
        for unit in plan_shard(spec, shard, options):
            print(f"{unit.id}: {' '.join(c.key() for c in unit.cells)}")
        return 0
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"matrix-{stamp}"
    try:
        results = run_matrix(spec, shard, out, options)
    except (CatalogueError, FileExistsError) as err:
        print(f"tspulab matrix: {err}", file=sys.stderr)
        return 2
    return _report(merge_records([results]), out, outcomes, args.fail_on_disagreement)


def merge_cli(args: argparse.Namespace) -> int:
    from tspulab.matrix.merge import merge_records, results_path, write_records

    try:
        outcomes = load_outcomes(args.outcomes)
        records = merge_records([results_path(p) for p in args.shards])
        args.out.mkdir(parents=True, exist_ok=True)
        write_records(records, args.out / "matrix.jsonl")
    except (ResultsError, OutcomesError, FileExistsError) as err:
        print(f"tspulab merge: {err}", file=sys.stderr)
        return 2
    return _report(records, args.out, outcomes, args.fail_on_disagreement)


def _report(
    records: Sequence[Record], out: Path, outcomes: OutcomeTable, fail_on_disagreement: bool
) -> int:
    from tspulab.matrix.report import format_disagreements, format_table, write_reports

    report = write_reports(records, out, outcomes)
    print(format_table(report))
    dis = format_disagreements(report)
    print(f"\n{len(report.disagreements)} disagreement(s) with docs/tspu-behaviour.md §6")
    if dis:
        print(dis)
    for lab in report.labs:
        if lab.error:
            print(f"lab {lab.lab} failed: {lab.error}", file=sys.stderr)
    wall = f"{report.wall_s:.0f} s" if report.wall_s is not None else "unfinished"
    print(f"\n{out / 'report.html'}  {out / 'junit.xml'}  (wall time {wall})")
    if report.unmeasured:
        print(f"{len(report.unmeasured)} cell(s) not measured", file=sys.stderr)
        return EXIT_FAILED
    if fail_on_disagreement and report.disagreements:
        return EXIT_DISAGREES
    return EXIT_OK
