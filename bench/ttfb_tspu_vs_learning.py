#!/usr/bin/env python3
"""Time to first byte of a curl HTTPS fetch through the TSPU (tspu-2022 profile: the first
packets of every flow go through the controller's DPI engine) against the same topology with a
plain learning switch at the TSPU position, measured side by side in one run.

Each fetch is the scenario's own probe (curl in the subscriber's namespace, resolving the name
through the lab's DNS server, verifying the run's CA): a new DNS flow (UDP) and a new TLS flow
per fetch, both judged by the TSPU. The set-ups alternate lab by lab (TSPU, learning, TSPU, ...);
the first fetch of each lab (ARP, MAC learning) is discarded. The figure of merit is the
difference of the medians of curl's time_starttransfer. Goal (issue 6): ≤ 2 ms added.

    sudo .venv/bin/python bench/ttfb_tspu_vs_learning.py [--scenario tspu-2022-sni]
        [--service yandex] [--rounds 4] [--fetches 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from crossing import Capture
from labbench import (
    controller_events,
    in_lab,
    median,
    order,
    percentile,
    scenario,
    spread,
    verdict,
)

from tspulab.scenario.live import LiveLab

#: curl's cumulative timers, turned into phases (ms): DNS, TCP handshake, TLS, request → first byte.
PHASES = ("dns", "tcp", "tls", "wait", "ttfb", "ttfb_no_dns")


def fetches(live: LiveLab, service: str, n: int) -> dict[str, list[float]]:
    subscribers = live.plan.subscribers
    out: dict[str, list[float]] = {p: [] for p in PHASES}
    out["failed"] = []
    live.probe(subscribers[0], service, record=False)  # warm-up: ARP and MAC learning
    with Capture(live.run_dir, live.record, live.tspu_switch) as capture:
        results = [live.probe(subscribers[i % len(subscribers)], service, record=False)
                   for i in range(n)]  # fmt: skip
    crossings = capture.crossings()
    out["cross_first"], out["cross_later"] = crossings.first, crossings.later
    for r in results:
        if not r.ok or r.time_starttransfer_s is None:
            out["failed"].append(1.0)
            continue
        dns = r.time_namelookup_s or 0.0
        conn = r.time_connect_s or 0.0
        tls = r.time_appconnect_s or 0.0
        first = r.time_starttransfer_s
        for phase, seconds in (("dns", dns), ("tcp", conn - dns), ("tls", tls - conn),
                               ("wait", first - tls), ("ttfb", first),
                               ("ttfb_no_dns", first - dns)):  # fmt: skip
            out[phase].append(seconds * 1000)
    if live.tspu:
        out["packet_ins"] = [float(live.controller_stats()["packet_ins"])]
        out["verdicts"] = [float(len(controller_events(live, "verdict")))]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tspu-2022-sni")
    parser.add_argument("--service", default="yandex", help="an allowed service of the scenario")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--fetches", type=int, default=40, help="per round and set-up")
    args = parser.parse_args()
    base = scenario(args.scenario)
    runs_dir = Path(tempfile.mkdtemp(prefix="tspulab-bench-"))
    print(f"scenario {base.name} (profile {base.profile}), subscribers → {args.service}, "
          f"{args.rounds} rounds × {args.fetches} fetches per set-up, "
          f"runs in {runs_dir}")  # fmt: skip
    all_: dict[str, dict[str, list[float]]] = {"tspu": {}, "learning": {}}
    rounds: dict[str, list[float]] = {"tspu": [], "learning": []}
    for r in range(1, args.rounds + 1):
        for mode in order(r):
            m = in_lab(base, runs_dir, mode == "tspu",
                       lambda live: fetches(live, args.service, args.fetches))  # fmt: skip
            for key, values in m.items():
                all_[mode].setdefault(key, []).extend(values)
            rounds[mode].append(median(m["ttfb"]))
            extra = (f"  packet-ins {m['packet_ins'][0]:.0f}, verdicts {m['verdicts'][0]:.0f}"
                     if mode == "tspu" else "")  # fmt: skip
            print(f"round {r} {mode:8s} ttfb median {median(m['ttfb']):6.2f} ms "
                  f"(without DNS {median(m['ttfb_no_dns']):6.2f} ms), "
                  f"failed {len(m['failed'])}{extra}", flush=True)  # fmt: skip
    print(f"\nmedians over {len(all_['tspu']['ttfb'])} TSPU and {len(all_['learning']['ttfb'])} "
          "learning-switch fetches (ms):")  # fmt: skip
    print(f"{'phase':12s} {'TSPU':>8s} {'learning':>9s} {'added':>8s}   TSPU p90  learning p90")
    for phase in PHASES:
        t, lrn = all_["tspu"][phase], all_["learning"][phase]
        print(f"{phase:12s} {median(t):8.2f} {median(lrn):9.2f} {median(t) - median(lrn):+8.2f}"
              f"   {percentile(t, 0.9):8.2f}  {percentile(lrn, 0.9):8.2f}")  # fmt: skip
    added = median(all_["tspu"]["ttfb"]) - median(all_["learning"]["ttfb"])
    print("\ncrossing the TSPU position, per packet (ms), from captures on both of its ports:")
    for group, label in (("cross_first", "first packets of a flow (to the client's first payload)"),
                         ("cross_later", "later packets")):  # fmt: skip
        t, lrn = all_["tspu"][group], all_["learning"][group]
        print(f"  {label}: TSPU median {median(t):.3f}, p90 {percentile(t, 0.9):.3f} "
              f"(n={len(t)}) · learning switch median {median(lrn):.3f}, "
              f"p90 {percentile(lrn, 0.9):.3f} (n={len(lrn)})")  # fmt: skip
    slow = {mode: all_[mode]["cross_later"] for mode in all_}
    share = {m: sum(1 for x in v if x > 0.5) / max(1, len(v)) * 100 for m, v in slow.items()}
    print(f"  later packets slower than 0.5 ms (replies that reached the switch before the "
          f"flow's judged rules): TSPU {share['tspu']:.1f} %, learning switch "
          f"{share['learning']:.1f} %")  # fmt: skip
    per_round = [t - lrn for t, lrn in zip(rounds["tspu"], rounds["learning"], strict=True)]
    print(f"added per round (median TSPU - median learning, same round) min / median / max: "
          f"{spread(per_round, '{:+.2f}')} ms")  # fmt: skip
    print(f"added time to first byte: {added:+.2f} ms median (goal ≤ 2 ms: "
          f"{verdict(added <= 2.0)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
