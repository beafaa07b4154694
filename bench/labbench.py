"""What the lab benchmarks share: one lab at a time, scenario variants, clean-up checks, figures.

The machine is shared and noisy. Every lab benchmark alternates the set-ups it compares (TSPU,
learning switch, TSPU, ...), one lab at a time (switch and interface names are fixed), and
reports medians and ratios of medians; nothing here asserts a timing.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tspulab.lab.record import remaining
from tspulab.lab.sandbox import run_in_sandbox
from tspulab.metrics.results import read_results
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import RegistrySource, Scenario
from tspulab.scenario.schema import load_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
#: Signs that a lab is up: our fixed switch names, or another private OVS with the userspace
#: datapath (every one of them makes the tap device `ovs-netdev`, and a second one cannot:
#: "ovs-netdev: creating tap device failed: Device or resource busy", its bridges fail).

T = TypeVar("T")


def quiet(*_: object) -> None:
    pass


def scenario(name_or_path: str) -> Scenario:
    """`tspu-2022-sni` or a path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIOS / f"{name_or_path}.yaml"
    return load_scenario(path)


def with_subscribers(base: Scenario, subscribers: int) -> Scenario:
    topology = base.topology.model_copy(update={"subscribers": subscribers})
    return base.model_copy(update={"topology": topology})


def with_registry_files(base: Scenario, files: Iterable[str]) -> Scenario:
    """The scenario with its registry replaced by `data:` list files."""
    sources = tuple(RegistrySource(file=f) for f in files)
    return base.model_copy(update={"registry": sources})


#: bring-ups tried before a benchmark gives up (each failure is printed)
BRINGUP_ATTEMPTS = 3


def _run_body(
    base: Scenario, runs_dir: Path, tspu: bool, body: Callable[[LiveLab], T]
) -> tuple[T, Path, list[str]]:
    """Inside the sandbox: the lab up, the body, the lab down."""
    with LiveLab(base, runs_dir, tspu=tspu, log=quiet) as live:
        result = body(live)
    return result, live.run_dir, live.leftovers


def in_lab(base: Scenario, runs_dir: Path, tspu: bool, body: Callable[[LiveLab], T]) -> T:
    """Bring the scenario's lab up in a sandbox of its own (labs run side by side: no waiting for
    other labs), run `body` there, tear down, and refuse to go on if the run left anything."""
    for attempt in range(1, BRINGUP_ATTEMPTS + 1):
        try:
            result, run_dir, left_at_exit = run_in_sandbox(_run_body, base, runs_dir, tspu, body)
        except Exception as exc:
            # A loaded machine: nginx or the switches may be slow to come up; try again, visibly.
            print(f"note: lab attempt {attempt} failed ({type(exc).__name__}: {exc})", flush=True)
            if attempt == BRINGUP_ATTEMPTS:
                raise
            time.sleep(5.0)
            continue
        left = leftovers(run_dir)
        if left or left_at_exit:
            raise SystemExit(f"run {run_dir} left {left or left_at_exit}")
        return result
    raise AssertionError("unreachable")


def leftovers(run_dir: Path) -> list[str]:
    """Everything of the run still there (tspulab.lab.record.remaining)."""
    return remaining(run_dir)


def controller_events(live: LiveLab, event: str | None = None) -> list[dict[str, Any]]:
    events = read_results(live.run_dir / "controller-events.jsonl")
    return [e for e in events if event is None or e.get("event") == event]


def flow_count(switch: str, cookie: int | None = None) -> int:
    """Rules the switch holds (optionally only one cookie's), without dumping them all."""
    argv = ["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", switch]
    if cookie is not None:
        argv.append(f"cookie={cookie:#x}/-1")
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return int(out.split("flow_count=")[1].split()[0])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """min / median / max, the way every comparison here is reported."""
    if not values:
        return "n/a"
    return " / ".join(fmt.format(v) for v in (min(values), median(values), max(values)))


def bootstrap_ratio(
    a: Sequence[float], b: Sequence[float], n: int = 2000, seed: int = 1
) -> tuple[float, float]:
    """A 90 % bootstrap interval of median(a) / median(b) (rounds resampled with replacement)."""
    rng = random.Random(seed)
    ratios = sorted(
        median(rng.choices(a, k=len(a))) / median(rng.choices(b, k=len(b))) for _ in range(n)
    )
    return ratios[int(0.05 * n)], ratios[int(0.95 * n) - 1]


def order(round_no: int) -> tuple[str, str]:
    """TSPU first in odd rounds, learning first in even ones: a drift in the machine's load
    then weighs on both set-ups alike."""
    return ("tspu", "learning") if round_no % 2 else ("learning", "tspu")


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
