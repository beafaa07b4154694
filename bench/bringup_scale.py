#!/usr/bin/env python3
"""Bring-up of a large campaign lab: 4 ISPs, ~100 hosts, ~40 services; time and memory.

Goal (issue 7): ≤ 30 s and ≤ 2 GiB. The scenario is generated (4 ISPs × 20 subscribers, 10 clouds
of 4 services each, every cloud's nginx serving all 40 services, a SOCKS proxy), brought up with
the campaign lab, probed once from one subscriber per ISP, and torn down. Memory is the resident
set of every process the run recorded (and their children), plus this process. Processes spawned
during bring-up (and execs) are counted from the kernel's fork/exec events (bench/spawncount.py):
a process costs 40-55x more in the emulated test VM than here, so this is the figure to shrink
for the VM (docs/vm.md). In the VM, with a small lab:

    sudo .venv/bin/python bench/bringup_scale.py [--isps 4] [--subscribers 20] [--clouds 10]
    bash scripts/vm-run.sh -- .venv/bin/python bench/bringup_scale.py --isps 1 --subscribers 2 \
        --clouds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spawncount import SpawnCounter

from tspulab.lab.record import RunRecord
from tspulab.lab.sandbox import run_in_sandbox
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario
from tspulab.scenario.schema import load_scenario_text


def scenario_text(isps: int, subscribers: int, clouds: int, per_cloud: int) -> str:
    lines = [
        "version: 1", "name: bringup-scale", "topology: {name: single-isp}",
        "profile: tspu-2022", "isps:",
    ]  # fmt: skip
    lines += [f"  - {{name: isp{i}, subscribers: {subscribers}}}" for i in range(1, isps + 1)]
    lines.append("clouds:")
    lines += [
        f"  - {{name: cloud{j}, prefixes: [{40 + j}.0.0.0/16]}}" for j in range(1, clouds + 1)
    ]
    lines.append("services:")
    for j in range(1, clouds + 1):
        for k in range(1, per_cloud + 1):
            role = "target" if (j, k) == (1, 1) else "innocent"  # one target: the schema wants one
            lines.append(
                f"  - {{name: s{j}-{k}, role: {role}, domains: [s{k}.cloud{j}.example], "
                f"cloud: cloud{j}, address: {40 + j}.0.{k}.10}}"
            )
    lines += ["probes: {timeout_s: 3}"]
    return "\n".join(lines) + "\n"


def rss_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run_pids(record: RunRecord) -> set[int]:
    recorded = {e["pid"] for e in record.entries() if e["kind"] == "process"}
    pids = set(recorded)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) in recorded or int(fields[1]) in recorded:  # group or parent
            pids.add(int(entry.name))
    return pids


def bring_up(scenario: Scenario, runs: Path, isps: int) -> dict[str, Any]:
    """In the run's sandbox: bring the lab up, measure, probe once per ISP, tear down."""
    started = time.monotonic()
    lab = LiveLab(scenario, runs, log=lambda *_: None)
    with lab:
        up_at = time.monotonic()
        assert lab.lab.net is not None
        hosts, switches = len(lab.lab.net.hosts), len(lab.lab.net.switches)
        memory = rss_bytes(run_pids(lab.record) | {os.getpid()})
        subs = [f"isp{i}-1" for i in range(1, isps + 1)]
        ok = [lab.probe(s, "s2-1").ok for s in subs]
        down_from = time.monotonic()
    return {"started": started, "up_at": up_at, "down_from": down_from,
            "down_s": time.monotonic() - down_from, "hosts": hosts, "switches": switches,
            "memory": memory, "ok": ok}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isps", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--clouds", type=int, default=10)
    parser.add_argument("--per-cloud", type=int, default=4)
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="tspulab-bringup-"))
    text = scenario_text(args.isps, args.subscribers, args.clouds, args.per_cloud)
    scenario = load_scenario_text(text, runs / "bringup.yaml")
    with SpawnCounter() as spawned:
        r = run_in_sandbox(bring_up, scenario, runs, args.isps, share=[runs], timeout_s=3600)
    up = r["up_at"] - r["started"]
    processes, execs = spawned.between(r["started"], r["up_at"])
    print(f"{r['hosts']} hosts, {r['switches']} switches, {len(scenario.services)} services "
          f"({args.isps} ISPs × {args.subscribers} subscribers, {args.clouds} clouds)")  # fmt: skip
    print(f"bring-up (OVS, controller, Mininet, nginx ×{args.clouds}, dnsmasq, proxies): "
          f"{up:.1f} s (goal ≤ 30 s: {'met' if up <= 30 else 'NOT met'})")  # fmt: skip
    print(f"processes spawned during bring-up: {processes} ({execs} execs), "
          f"{up / max(processes, 1) * 1000:.1f} ms of bring-up per process"
          f"{'; some kernel events were lost' if spawned.lost else ''}")  # fmt: skip
    print(f"resident memory of the run's processes: {r['memory'] / 2**20:,.0f} MiB "
          f"(goal ≤ 2048 MiB: {'met' if r['memory'] <= 2 * 2**30 else 'NOT met'})")  # fmt: skip
    print(f"teardown: {r['down_s']:.1f} s; an HTTPS probe from each ISP: "
          f"{sum(r['ok'])}/{len(r['ok'])} succeeded")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
