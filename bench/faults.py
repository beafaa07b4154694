"""Faults at random moments over many runs: do the runs end, is anything measured lost, is anything
left behind, and how long does the lab take to recover?

Each run is scenarios/faults.yaml (one ISP, three services, a probe round from sub2 every 2 s for
16 s) with its own random faults: one to three of kill-controller, kill-ovs, kill-service,
kill-dns and fill-disk, each at a random time, most repaired after a random 2-5 s, some left broken
to the end; the ISP runs fail-closed or fail-open at random (the two alternate in the sequence of
runs, so neither gets the quieter half of the machine's time). Every fourth run is also ended by
SIGTERM or a Ctrl-C (SIGINT to the run's supervisor, as a terminal's reaches it) at a random moment
from bring-up on. A run with fill-disk has its runs directory on a 64 MiB tmpfs of its own sandbox.

Printed per run and in total:
- **runs completed**: the run ended with its report (a signalled run counts when it wrote its report
  saying so);
- **results lost** (goal 0): a completed run's probe lines short of what it planned, a torn line
  before the last, and for a signalled run every line read before the signal that is missing or
  changed afterwards;
- **leftovers** (goal 0): processes in the run's namespaces after it ended, interfaces new in the
  root namespace, mounts of its folders, and what `tspulab.lab.record.remaining` finds;
- the spread (min / median / max) of each recovery figure of faults.jsonl, per kind of fault and,
  for kill-controller, per fail mode.

Run: ``nice -n 5 .venv/bin/python bench/faults.py [--runs 20] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from tspulab.contracts import FAULTS_FILE, read_faults
from tspulab.lab.record import remaining
from tspulab.lab.sandbox import start_sandbox
from tspulab.metrics.results import read_results
from tspulab.scenario.runner import RunInterrupted, run_scenario
from tspulab.scenario.schema import load_scenario_text
from tspulab.scenario.timeline_runner import planned_probes

FAULTS_YAML = Path(__file__).resolve().parents[1] / "scenarios" / "faults.yaml"
KINDS = ("kill-controller", "kill-ovs", "kill-service", "kill-dns", "fill-disk")
CLOUDS = ("telegram", "gcp", "yandex")
END_S = 16
KEPT = ("results.jsonl", FAULTS_FILE, "report.html", "run.json", "made.jsonl", "summary.json")


def _quiet(*_: object) -> None:
    pass


def scenario_text(faults: list[str]) -> str:
    text = FAULTS_YAML.read_text()
    head = text[: text.index("\nprobes:")]
    return (
        f"{head}\nprobes:\n  timeout_s: 2\n  every: 2s\n  from: [sub2]\n\n"
        f"timeline:\n  - {{at: +{END_S}s, label: end, probe: true}}\n\n"
        "faults:\n" + "".join(f"  - {f}\n" for f in faults)
    )


def random_faults(rng: random.Random) -> list[str]:
    out = []
    for kind in rng.sample(KINDS, rng.randint(1, 3)):
        at = round(rng.uniform(1.0, 12.0), 1)
        target = f", target: {rng.choice(CLOUDS)}" if kind == "kill-service" else ""
        lasts = "" if rng.random() < 0.25 else f", for: {round(rng.uniform(2.0, 5.0), 1)}s"
        out.append(f"{{at: +{at}s, kind: {kind}{target}{lasts}}}")
    return out


def mode(name: str) -> Literal["closed", "open"]:
    return "open" if name == "open" else "closed"


def one_run(base: Path, text: str, fail_mode: str, small: bool) -> dict[str, Any]:
    """Inside a sandbox: the run (on a tmpfs of this sandbox when `small`), its files kept."""
    runs = base / "runs"
    runs.mkdir()
    if small:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(runs)], check=True)
    scenario = load_scenario_text(text, FAULTS_YAML)
    interrupted = None
    try:
        outcome = run_scenario(
            scenario, runs, bulk_transfer=False, fail_mode=mode(fail_mode), log=_quiet
        )
        run_dir = outcome.run_dir
    except RunInterrupted as err:
        interrupted, run_dir = type(err.__cause__).__name__, Path(err.run_dir)
    if small:  # the tmpfs goes with the sandbox: keep what the bench reads
        kept = base / "kept" / run_dir.name
        kept.mkdir(parents=True)
        for name in KEPT:
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, kept / name)
        run_dir = kept
    return {"run_dir": run_dir, "interrupted": interrupted, "planned": planned_probes(scenario)}


def _interfaces() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def _lines(run_dir: Path | None) -> list[str]:
    path = run_dir / "results.jsonl" if run_dir else None
    if path is None or not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.endswith("}")]


def bench_run(n: int, base: Path, rng: random.Random) -> dict[str, Any]:
    faults = random_faults(rng)
    fail_mode = ("closed", "open")[n % 2]
    sig = (signal.SIGTERM, signal.SIGINT)[(n // 4) % 2] if n % 4 == 3 else None
    small = sig is None and any("fill-disk" in f for f in faults)
    if sig is not None:  # a signalled run's results are read from outside while it runs
        faults = [f for f in faults if "fill-disk" not in f] or ["{at: +3s, kind: kill-dns}"]
    base.mkdir(parents=True)
    before_ifs = _interfaces()
    box = start_sandbox(one_run, base, scenario_text(faults), fail_mode, small)
    seen: list[str] = []
    if sig is not None:
        deadline = time.monotonic() + 120
        while not any((base / "runs").glob("*/run.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 20.0))  # from bring-up to the end of the timeline
        seen = _lines(next((base / "runs").glob("faults-*"), None))
        box.signal(sig)
    try:
        got = box.wait(600)
        error = None
    except Exception as err:  # a run that ended without its report
        got, error = {"run_dir": next((base / "runs").glob("faults-*"), None)}, repr(err)
    left = [f"process {p}" for p in box.processes()]
    left += [f"interface {i}" for i in sorted(_interfaces() - before_ifs)]
    left += [
        f"mount {line.split()[4]}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if str(base) in line
    ]
    run_dir: Path | None = got.get("run_dir")
    if run_dir is not None:
        left += remaining(run_dir)
    lost = 0
    lines = _lines(run_dir)
    if run_dir is not None and (run_dir / "results.jsonl").exists():
        raw = (run_dir / "results.jsonl").read_text().splitlines()
        for line in raw[:-1]:  # a line torn before the last one is a result lost
            try:
                json.loads(line)
            except json.JSONDecodeError:
                lost += 1
    if sig is not None:
        lost += sum(1 for a, b in zip(seen, lines, strict=False) if a != b)
        lost += max(0, len(seen) - len(lines))
    elif error is None and run_dir is not None:
        results = read_results(run_dir / "results.jsonl")
        lost += max(0, got["planned"] - sum(1 for r in results if r.get("kind") == "https"))
    records = read_faults(run_dir / FAULTS_FILE)[0] if run_dir is not None else []
    report = run_dir is not None and (run_dir / "report.html").exists()
    return {
        "n": n, "faults": faults, "fail_mode": fail_mode,
        "signal": signal.Signals(sig).name if sig else None,
        "completed": error is None and report, "error": error, "lost": lost, "left": left,
        "records": records, "interrupted": got.get("interrupted"),
    }  # fmt: skip


def spread(values: list[float]) -> str:
    return (
        f"{min(values):6.2f} {statistics.median(values):6.2f} {max(values):6.2f}  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"faults bench: {args.runs} runs, seed {seed}")
    figures: dict[str, dict[str, list[float]]] = {}
    totals = {"completed": 0, "lost": 0, "left": 0}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tspulab-faults-bench-") as tmp:
        for n in range(args.runs):
            got = bench_run(n, Path(tmp) / f"run{n}", rng)
            totals["completed"] += bool(got["completed"])
            totals["lost"] += got["lost"]
            totals["left"] += len(got["left"])
            for record in got["records"]:
                kind = str(record.fault)
                if kind == "kill-controller":
                    kind += f" ({got['fail_mode']})"
                for name, value in record.measured.items():
                    figures.setdefault(kind, {}).setdefault(name, []).append(value)
            failed = [r.detail for r in got["records"] if str(r.phase) == "failed"]
            ended = f" + {got['signal']}" if got["signal"] else ""
            print(
                f"run {n:2d} {got['fail_mode']:6s} {'; '.join(got['faults'])}{ended}"
                f"\n        completed {got['completed']}, lost {got['lost']}, "
                f"left {got['left'] or 0}, records {len(got['records'])}"
                + (f", error {got['error']}" if got["error"] else "")
                + (f", failed: {failed}" if failed else ""),
                flush=True,
            )
    print(f"\n{args.runs} runs in {time.monotonic() - started:.0f} s (seed {seed})")
    print(f"runs completed {totals['completed']}/{args.runs}")
    print(f"results lost   {totals['lost']} (goal 0)")
    print(f"leftovers      {totals['left']} (goal 0)")
    print("\nrecovery figures, seconds: min median max")
    for kind in sorted(figures):
        for name, values in sorted(figures[kind].items()):
            print(f"  {kind:28s} {name:24s} {spread(values)}")


if __name__ == "__main__":
    main()
