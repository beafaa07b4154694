#!/usr/bin/env python3
"""iperf3 TCP throughput subscriber → service through the TSPU switch, and through the same
topology with a plain learning switch at the TSPU position, measured side by side in one run.

The machine is shared and noisy, so the two set-ups alternate (TSPU, learning, TSPU, ...) and the
figure of merit is the ratio of medians. Goal (issue 6): ratio ≥ 0.9.

With the demo scenario (profile rkn-2018-ip) the TSPU never inspects: registry drops and
forwarding are all in the switch. With `--scenario tspu-2022-sni` every new TCP flow's first
packets climb to the controller's DPI engine until its verdict is final (iperf3's streams are not
TLS, so the inspection budget runs out first), then the flow is pushed into the switch.

    sudo .venv/bin/python bench/throughput_tspu_vs_learning.py [--scenario demo]
        [--rounds 3] [--seconds 5] [--service NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from labbench import (
    bootstrap_ratio,
    controller_events,
    in_lab,
    median,
    order,
    scenario,
    spread,
    verdict,
)

from tspulab.lab.services import start_logged
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario


def default_service(base: Scenario) -> str:
    """The first innocent service whose address is outside the registry (allowed by address)."""
    from tspulab.scenario.build import build_registry

    registry = build_registry(base)
    return next(
        s.name
        for s in base.services
        if s.role == "innocent" and not registry.contains_address(str(s.address))
    )


def iperf3(live: LiveLab, service_name: str, seconds: int) -> dict[str, float]:
    service = next(s for s in live.scenario.services if s.name == service_name)
    server = live.lab.host(live.plan.cloud_hosts[service.cloud])
    start_logged(server, ["iperf3", "-s", "-1"], live.run_dir / "iperf3-server.log",
                 live.record, "iperf3 server")  # fmt: skip
    time.sleep(0.5)
    out = live.host("sub1").cmd(f"iperf3 -c {service.address} -t {seconds} -J")
    report = json.loads(out)
    if "error" in report:
        raise RuntimeError(report["error"])
    end = report["end"]
    figures = {
        "received_mbit_s": end["sum_received"]["bits_per_second"] / 1e6,
        "retransmits": float(end["sum_sent"].get("retransmits", 0)),
        "packet_ins": 0.0,
        "verdicts": 0.0,
    }
    if live.tspu:
        figures["packet_ins"] = float(live.controller_stats()["packet_ins"])
        figures["verdicts"] = float(len(controller_events(live, "verdict")))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="demo", help="name in scenarios/ or a YAML path")
    parser.add_argument("--service", help="default: first innocent service outside the registry")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    base = scenario(args.scenario)
    service = args.service or default_service(base)
    runs_dir = Path(tempfile.mkdtemp(prefix="tspulab-bench-"))
    print(f"scenario {base.name} (profile {base.profile}), sub1 → {service}, "
          f"{args.rounds} rounds × {args.seconds} s, runs in {runs_dir}")  # fmt: skip
    results: dict[str, list[float]] = {"tspu": [], "learning": []}
    for r in range(1, args.rounds + 1):
        for mode in order(r):
            m = in_lab(base, runs_dir, mode == "tspu",
                       lambda live: iperf3(live, service, args.seconds))  # fmt: skip
            results[mode].append(m["received_mbit_s"])
            dpi = (f"  packet-ins {m['packet_ins']:.0f}, verdicts {m['verdicts']:.0f}"
                   if mode == "tspu" else "")  # fmt: skip
            print(f"round {r} {mode:8s} {m['received_mbit_s']:8.1f} Mbit/s  "
                  f"retransmits {m['retransmits']:.0f}{dpi}", flush=True)  # fmt: skip
    tspu, learning = median(results["tspu"]), median(results["learning"])
    ratio = tspu / learning
    per_round = [t / lrn for t, lrn in zip(results["tspu"], results["learning"], strict=True)]
    lo, hi = bootstrap_ratio(results["tspu"], results["learning"])
    print(f"Mbit/s min / median / max: TSPU {spread(results['tspu'], '{:.0f}')} · learning "
          f"switch {spread(results['learning'], '{:.0f}')}")  # fmt: skip
    print(f"ratio per round (TSPU / learning, same round) min / median / max: "
          f"{spread(per_round, '{:.3f}')}")  # fmt: skip
    straddles = "" if lo >= 0.9 or hi < 0.9 else "; the interval straddles 0.9: more rounds"
    print(f"ratio of medians {ratio:.3f}, 90 % bootstrap interval {lo:.3f} to {hi:.3f} "
          f"(goal ≥ 0.9: {verdict(ratio >= 0.9)}{straddles})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
