"""How often a passive ISP filter wins its race against the server (tspu-behaviour.md §4: the
injected 302 must arrive "faster than the real server").

One lab, one ISP whose old filter is passive with DNS tampering off, so every HTTP probe of a
listed site reaches the real server and the filter's 302 races the server's 200. Rounds of
probes run one at a time and in bursts of 12 at once (the runner's parallelism), interleaved;
for each set-up the script prints the share of probes that got the 302 per round, as
min / median / max over the rounds, and the probes' total times.

    sudo .venv/bin/python bench/old_filter_race.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tspulab.lab.sandbox import run_in_sandbox
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario_text

SCENARIO = """
version: 1
name: old-filter-race
topology: {name: isps}
profile: tspu-2022
registry:
  - domains: [rutracker.org]
isps:
  - name: rt
    subscribers: 2
    old_filter: {dns: "off", mode: passive, blockpage: 95.167.13.50}
clouds:
  - {name: hosting, prefixes: [195.82.146.0/24]}
services:
  - {name: rutracker, role: target, domains: [rutracker.org], cloud: hosting,
     address: 195.82.146.214}
  - {name: bystander, role: innocent, domains: [www.bystander.ru], cloud: hosting,
     address: 195.82.146.215}
probes: {timeout_s: 3}
"""
BURST = 12


def _round(live: LiveLab, parallel: bool) -> tuple[float, list[float]]:
    subs = ["rt-1", "rt-2"]
    n = BURST if parallel else 6

    def one(k: int) -> dict[str, Any]:
        return live.probe(subs[k % 2], "rutracker", kind="http", record=False).to_json()

    if parallel:
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            results = list(pool.map(one, range(n)))
    else:
        results = [one(k) for k in range(n)]
    won = sum(1 for r in results if r["http_code"] == 302)
    return won / n, [float(r["time_total_s"] or 0) * 1000 for r in results]


def measure(rounds: int) -> dict[str, Any]:
    scenario = load_scenario_text(SCENARIO, "old-filter-race.yaml")
    out: dict[str, Any] = {"serial": ([], []), "burst of 12": ([], [])}
    with tempfile.TemporaryDirectory() as runs, LiveLab(scenario, Path(runs), log=print) as live:
        for _ in range(rounds):  # interleaved, so load drifts hit both set-ups alike
            for name, parallel in (("serial", False), ("burst of 12", True)):
                share, times = _round(live, parallel)
                out[name][0].append(share)
                out[name][1].extend(times)
    return out


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    out = run_in_sandbox(measure, args.rounds, timeout_s=900)
    print(f"passive filter vs server, {args.rounds} interleaved rounds per set-up")
    for name, (shares, times) in out.items():
        print(
            f"  {name:12} share of probes that got the 302 per round (min / median / max): "
            f"{_spread(shares)}; probe time ms: {_spread(times)}"
        )


if __name__ == "__main__":
    main()
