#!/usr/bin/env python3
"""iperf3 TCP throughput subscriber → service through the TSPU switch, and through the same
topology with a plain learning switch at the TSPU position, measured side by side in one run.

The machine is shared and noisy, so the two set-ups alternate (TSPU, learning, TSPU, ...) and the
figure of merit is the ratio of medians. Goal (issue 3): ratio ≥ 0.9.

    sudo .venv/bin/python bench/throughput_tspu_vs_learning.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tspulab.controllers.config import ControllerConfig
from tspulab.lab.network import Lab
from tspulab.lab.record import RunRecord
from tspulab.lab.services import start_logged
from tspulab.scenario.build import build_registry, plan_lab
from tspulab.scenario.schema import load_scenario
from tspulab.topologies.single_isp import (
    TSPU_DPID,
    TSPU_SUBSCRIBER_PORT,
    TSPU_UPSTREAM_PORT,
    SingleIspTopo,
)

DEMO = Path(__file__).resolve().parents[1] / "scenarios" / "demo.yaml"
SERVICE = "evernote"  # outside every registry prefix of the demo


def measure(tspu: bool, seconds: int, runs_dir: Path) -> dict[str, float]:
    scenario = load_scenario(DEMO)
    plan = plan_lab(scenario)
    prefixes = build_registry(scenario).aggregated_prefixes()
    run_dir = Path(tempfile.mkdtemp(prefix="tspu-" if tspu else "learning-", dir=runs_dir))
    record = RunRecord(run_dir)
    config = run_dir / "controller.json"
    ControllerConfig.dump(
        config,
        tspu={"dpid": TSPU_DPID, "subscriber_port": TSPU_SUBSCRIBER_PORT,
              "upstream_port": TSPU_UPSTREAM_PORT, "registry_prefixes": [str(p) for p in prefixes]}
        if tspu else None,
        events_log=run_dir / "controller-events.jsonl",
    )  # fmt: skip
    lab = Lab(run_dir, SingleIspTopo(spec=plan.topology), config, record)
    service = next(s for s in scenario.services if s.name == SERVICE)
    server_host = plan.cloud_hosts[service.cloud]
    try:
        lab.start()
        start_logged(lab.host(server_host), ["iperf3", "-s", "-1"], run_dir / "iperf3-server.log",
                     record, "iperf3 server")  # fmt: skip
        time.sleep(0.5)
        out = lab.host("sub1").cmd(f"iperf3 -c {service.address} -t {seconds} -J")
        report = json.loads(out)
        if "error" in report:
            raise RuntimeError(report["error"])
        end = report["end"]
        return {
            "received_mbit_s": end["sum_received"]["bits_per_second"] / 1e6,
            "retransmits": float(end["sum_sent"].get("retransmits", 0)),
        }
    finally:
        lab.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    runs_dir = Path(tempfile.mkdtemp(prefix="tspulab-bench-"))
    results: dict[str, list[float]] = {"tspu": [], "learning": []}
    for r in range(1, args.rounds + 1):
        for mode in ("tspu", "learning"):
            m = measure(mode == "tspu", args.seconds, runs_dir)
            results[mode].append(m["received_mbit_s"])
            print(f"round {r} {mode:8s} {m['received_mbit_s']:8.1f} Mbit/s  "
                  f"retransmits {m['retransmits']:.0f}", flush=True)  # fmt: skip
    tspu, learning = statistics.median(results["tspu"]), statistics.median(results["learning"])
    ratio = tspu / learning
    print(f"median TSPU {tspu:.1f} Mbit/s · learning switch {learning:.1f} Mbit/s · "
          f"ratio {ratio:.3f} (goal ≥ 0.9: {'met' if ratio >= 0.9 else 'NOT met'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
