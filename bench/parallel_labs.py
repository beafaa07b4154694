"""Labs side by side on one machine, each in its own sandbox: bring-up time and probe success for
1, 2 and 4 labs at once, measured in interleaved rounds and printed side by side.

Each lab is the demo scenario (one ISP, 8 hosts, 4 clouds): it comes up, probes every service from
every subscriber once (20 HTTPS fetches), and the probe counts as a success when its outcome is the
one the scenario implies (Telegram and Viber time out in the blocked prefixes, the rest load).

Run: ``.venv/bin/python bench/parallel_labs.py [--rounds 2] [--counts 1,2,4]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tspulab.lab.record import remaining
from tspulab.lab.sandbox import start_sandbox
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

DEMO = Path(__file__).resolve().parents[1] / "scenarios" / "demo.yaml"
BLOCKED = {"telegram-web", "telegram-aws", "viber"}


def _quiet(*_: object) -> None:
    pass


def one_lab(runs: Path) -> dict[str, Any]:
    """Inside a sandbox: bring-up time, then every probe once."""
    started = time.monotonic()
    live = LiveLab(load_scenario(DEMO), runs, log=_quiet)
    with live:
        up_s = time.monotonic() - started
        outcomes = [
            (service.name, live.probe(sub, service.name, timeout_s=3).ok)
            for sub in live.subscribers
            for service in live.scenario.services
        ]
    expected = sum(ok == (name not in BLOCKED) for name, ok in outcomes)
    return {"up_s": up_s, "probes": len(outcomes), "as_expected": expected,
            "run_dir": live.run_dir}  # fmt: skip


def run_together(n: int, base: Path) -> dict[str, Any]:
    started = time.monotonic()
    boxes = []
    for k in range(n):
        (base / f"lab{k}").mkdir(parents=True)
        boxes.append(start_sandbox(one_lab, base / f"lab{k}"))
    got = [box.wait(900) for box in boxes]
    wall = time.monotonic() - started
    left = [x for g in got for x in remaining(g["run_dir"])]
    return {"n": n, "wall_s": wall, "up_s": [g["up_s"] for g in got],
            "probes": sum(g["probes"] for g in got),
            "as_expected": sum(g["as_expected"] for g in got), "left": left}  # fmt: skip


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.1f} s (min {min(values):.1f}, max {max(values):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--counts", default="1,2,4")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    base = Path(tempfile.mkdtemp(prefix="tspulab-parallel-"))
    rows: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(args.rounds):  # interleaved: every count once per round
        for n in counts:
            rows[n].append(run_together(n, base / f"r{r}-n{n}"))
            print(f"round {r + 1}: {n} lab(s) done", flush=True)
    header = f"{'labs':>4} | {'bring-up per lab':<32} | {'wall per round':<32}"
    print(f"\n{header} | probes as expected | left")
    one = statistics.median(u for row in rows[counts[0]] for u in row["up_s"])
    for n in counts:
        ups = [u for row in rows[n] for u in row["up_s"]]
        walls = [row["wall_s"] for row in rows[n]]
        probes = sum(row["probes"] for row in rows[n])
        good = sum(row["as_expected"] for row in rows[n])
        left = sum(len(row["left"]) for row in rows[n])
        ratio = statistics.median(ups) / one
        print(f"{n:>4} | {spread(ups)} ×{ratio:.1f} | {spread(walls)} | "
              f"{good}/{probes} ({100 * good / probes:.0f} %) | {left}")  # fmt: skip
    for n in counts:
        for row in rows[n]:
            for item in row["left"]:
                print(f"left behind ({n} labs): {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
