#!/usr/bin/env python3
"""New TLS flows per second the TSPU judges: short connections from several subscribers at
stepped rates, through the TSPU (tspu-2022 profile) and through a plain learning switch.

Each subscriber runs bench/flowgen.py in its namespace: connections to an allowed service, each
sending a real ClientHello (SNI = the service's name) and waiting for the server's ServerHello,
then closed with a RST. Through the TSPU every such flow climbs to the controller (SYN and
SYN-ACK mirrored, ACK and ClientHello diverted) until its verdict is final and the switch takes
it over. Per step the script counts connections that got their ServerHello, the controller's
`verdict` events for them and its packet-ins (controller stats), and the CPU each part used. The
sustained rate is the highest step at which ≥ 99 % of the offered flows were launched on time,
succeeded and were judged. Ramps alternate between the set-ups (`--repeats` each, the order
flipped every round) and the report gives min / median / max over them. Goals (issue 11): the
TSPU sustains ≥ 0.8 × the learning switch's rate (and ≥ 3,000/s wherever the learning switch
reaches that); at the learning switch's sustained rate the first reply waits ≤ 2 ms more; the
controller spends ≤ 0.3 ms of CPU per judged flow.

    sudo .venv/bin/python bench/new_flows_per_second.py [--rates 250,500,1000,2000,3000]
        [--seconds 5] [--subscribers 8] [--repeats 2] [--no-learning]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labbench import (
    controller_events,
    in_lab,
    median,
    order,
    percentile,
    scenario,
    spread,
    verdict,
    with_subscribers,
)

from tspulab.scenario.live import LiveLab

FLOWGEN = Path(__file__).resolve().parent / "flowgen.py"
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in a process group."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (f := _stat(int(entry))) is not None and int(f[2]) == pgid:
            total += (int(f[11]) + int(f[12])) / TICK
    return total


def nginx_pgid(live: LiveLab, host: str) -> int:
    conf = str(live.run_dir / "services" / host / "nginx.conf")
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if conf.encode() in cmdline:  # nginx rewrites its title: "nginx: master process ..."
            f = _stat(int(entry))
            if f is not None:
                return int(f[2])
    raise RuntimeError(f"no nginx for {host}")


def cpu_sample(live: LiveLab, nginx: int) -> dict[str, float]:
    sample = {
        "ovs-vswitchd": group_cpu_s(live.lab.ovs.pids["ovs-vswitchd"]),
        "nginx": group_cpu_s(nginx),
    }
    assert live.lab.controller.proc is not None
    sample["controller"] = group_cpu_s(live.lab.controller.proc.pid)
    return sample


def ovs_counters(live: LiveLab) -> dict[str, int]:
    """OVS's own coverage totals: packet-ins it had to drop because the controller connection's
    send queue was full (`rconn_overflow`), and upcalls from the datapath."""
    ctl = live.lab.ovs.directory / f"ovs-vswitchd.{live.lab.ovs.pids['ovs-vswitchd']}.ctl"
    out = subprocess.run(["ovs-appctl", "-t", str(ctl), "coverage/show"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    totals = {}
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" ")
        if "total:" in rest:
            totals[name] = int(rest.rsplit("total:", 1)[1])
    names = ("rconn_overflow", "dpif_execute", "upcall_flow_limit_hit")
    return {k: totals.get(k, 0) for k in names}


def judged_count(live: LiveLab, address: str) -> int:
    return sum(1 for e in controller_events(live, "verdict") if e["flow"]["server"] == address)


def step(
    live: LiveLab, service: Any, rate: float, seconds: float, subs: list[str], first_port: int
) -> dict[str, Any]:
    address = str(service.address)
    nginx = nginx_pgid(live, live.plan.cloud_hosts[service.cloud])
    stats0 = live.controller_stats() if live.tspu else {"packet_ins": 0, "judged": 0}
    verdicts0 = judged_count(live, address) if live.tspu else 0
    cpu0 = cpu_sample(live, nginx)
    ovs0 = ovs_counters(live)
    start_at = time.time() + 1.0
    argv = [sys.executable, str(FLOWGEN), "--address", address, "--sni", service.domains[0],
            "--rate", str(rate / len(subs)), "--seconds", str(seconds),
            "--start-at", str(start_at), "--first-port", str(first_port)]  # fmt: skip
    procs = [
        live.lab.host(sub).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for sub in subs
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"flowgen failed: {err.decode()[-500:]}")
        reports.append(json.loads(out))
    wall = time.time() - start_at
    cpu1 = cpu_sample(live, nginx)
    time.sleep(0.5)  # the last verdicts reach the event log
    stats1 = live.controller_stats() if live.tspu else {"packet_ins": 0, "judged": 0}
    ovs1 = ovs_counters(live)
    attempted = sum(r["attempted"] for r in reports)
    failures: dict[str, int] = {}
    for r in reports:
        for kind, n in r["failures"].items():
            failures[kind] = failures.get(kind, 0) + n
    latency = [x for r in reports for x in r["latency_ms"]]
    cpu = {k: (cpu1[k] - cpu0[k]) / wall * 100 for k in cpu0}
    cpu["clients"] = sum(r["cpu_s"] for r in reports) / wall * 100
    return {
        "offered": rate,
        "attempted": attempted,
        "launch_rate": attempted / max(r["launch_s"] for r in reports),
        "ok": sum(r["ok"] for r in reports),
        "failures": failures,
        "verdicts": (judged_count(live, address) - verdicts0) if live.tspu else None,
        "judged": stats1["judged"] - stats0["judged"],
        "packet_ins": stats1["packet_ins"] - stats0["packet_ins"],
        "p50_ms": percentile(latency, 0.5),
        "p99_ms": percentile(latency, 0.99),
        "cpu_pct": cpu,
        "packet_ins_dropped_by_ovs": ovs1["rconn_overflow"] - ovs0["rconn_overflow"],
        "seconds": seconds,
    }


def sustained(row: dict[str, Any], tspu: bool) -> bool:
    need = 0.99 * row["offered"] * row["seconds"]
    judged = not tspu or row["verdicts"] >= need
    return row["launch_rate"] >= 0.99 * row["offered"] and row["ok"] >= need and judged


def ramp(live: LiveLab, args: argparse.Namespace) -> list[dict[str, Any]]:
    service = next(s for s in live.scenario.services if s.name == args.service)
    subs = list(live.plan.subscribers)
    rows = []
    first_port = 1024  # each subscriber's source ports, never reused within the lab
    for rate in args.rates:
        row = step(live, service, rate, args.seconds, subs, first_port)
        first_port += round(rate / len(subs) * args.seconds)
        rows.append(row)
        print_row("TSPU" if live.tspu else "learning", row)
        if row["ok"] < 0.5 * row["attempted"]:
            break  # drowned: higher rates only pile up timeouts
        time.sleep(1.0)
    return rows


def print_row(mode: str, row: dict[str, Any]) -> None:
    cpu = " ".join(f"{k} {v:.0f}%" for k, v in row["cpu_pct"].items())
    dpi = ""
    if row["verdicts"] is not None:
        per_flow = row["packet_ins"] / max(1, row["verdicts"])
        dpi = (f" verdicts {row['verdicts']:6d} ({row['verdicts'] / row['seconds']:6.0f}/s), "
               f"{per_flow:.1f} packet-ins/flow, "
               f"{row['packet_ins_dropped_by_ovs']} packet-ins dropped by OVS,")  # fmt: skip
    fail = ", ".join(f"{k} {v}" for k, v in row["failures"].items()) or "none"
    print(f"{mode:8s} offered {row['offered']:5.0f}/s launched {row['launch_rate']:6.0f}/s "
          f"ok {row['ok']:6d}/{row['attempted']:<6d} ({row['ok'] / row['seconds']:6.0f}/s),{dpi} "
          f"first reply p50 {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms; failed: {fail}; "
          f"CPU (% of one core) {cpu}", flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tspu-2022-sni")
    parser.add_argument("--service", default="yandex", help="an allowed service of the scenario")
    parser.add_argument("--rates", default="250,500,1000,2000,3000",
                        type=lambda s: [float(x) for x in s.split(",")])  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0, help="per step")
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--no-learning", action="store_true", help="skip the learning switch")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="ramps per set-up, alternated (TSPU, learning, learning, TSPU, ...)",
    )
    args = parser.parse_args()
    base = with_subscribers(scenario(args.scenario), args.subscribers)
    runs_dir = Path(tempfile.mkdtemp(prefix="tspulab-bench-"))
    print(f"scenario {base.name} (profile {base.profile}), {args.subscribers} subscribers → "
          f"{args.service}, steps of {args.seconds:g} s, {args.repeats} ramps per set-up, "
          f"runs in {runs_dir}")  # fmt: skip
    results: dict[str, list[list[dict[str, Any]]]] = {"tspu": [], "learning": []}
    for r in range(1, args.repeats + 1):
        for mode in order(r):
            if mode == "learning" and args.no_learning:
                continue
            rows = in_lab(base, runs_dir, mode == "tspu", lambda live: ramp(live, args))
            results[mode].append(rows)
    report(results)
    (runs_dir / "new_flows_per_second.json").write_text(json.dumps(results, indent=1))
    return 0


def best_rate(rows: list[dict[str, Any]], tspu: bool) -> float:
    return max((r["offered"] for r in rows if sustained(r, tspu)), default=0.0)


def at_rate(ramps: list[list[dict[str, Any]]], rate: float) -> list[dict[str, Any]]:
    return [row for rows in ramps for row in rows if row["offered"] == rate]


def report(results: dict[str, list[list[dict[str, Any]]]]) -> None:
    tspu_best = [best_rate(rows, True) for rows in results["tspu"]]
    learn_best = [best_rate(rows, False) for rows in results["learning"]]
    print(f"\nsustained new flows/s, per ramp: TSPU {tspu_best} · learning switch {learn_best}")
    if learn_best:
        ratios = [t / lrn for t, lrn in zip(tspu_best, learn_best, strict=False) if lrn]
        lrn = median(learn_best)
        goal = max(0.8 * lrn, 3000.0 if lrn >= 3000 else 0.0)
        print(f"TSPU / learning per ramp pair min / median / max: {spread(ratios, '{:.2f}')} "
              f"(goal ≥ 0.8 and ≥ 3,000/s where the learning switch reaches it: "
              f"{verdict(median(tspu_best) >= goal)})")  # fmt: skip
        rate = median(learn_best)
        t_rows, l_rows = at_rate(results["tspu"], rate), at_rate(results["learning"], rate)
        if t_rows and l_rows:
            t50 = [r["p50_ms"] for r in t_rows]
            l50 = [r["p50_ms"] for r in l_rows]
            added = median(t50) - median(l50)
            print(f"first reply p50 at the learning switch's sustained {rate:.0f}/s (ms, min / "
                  f"median / max): TSPU {spread(t50, '{:.1f}')} · learning "
                  f"{spread(l50, '{:.1f}')}; added {added:+.1f} ms (goal ≤ 2 ms: "
                  f"{verdict(added <= 2.0)})")  # fmt: skip
    # CPU per judged flow, per process, at each ramp's highest sustained rate
    per: dict[str, list[float]] = {}
    for rows in results["tspu"]:
        good = [r for r in rows if sustained(r, True)]
        if not good:
            continue
        top = max(good, key=lambda r: r["offered"])
        for k, v in top["cpu_pct"].items():
            per.setdefault(k, []).append(v * 10 / top["offered"])  # % of a core → ms per flow
    if per:
        parts = ", ".join(f"{k} {spread(v, '{:.2f}')}" for k, v in per.items())
        ctl = median(per["controller"])
        print(f"CPU per judged flow at the sustained rate (ms, min / median / max): {parts}; "
              f"controller goal ≤ 0.3 ms: {verdict(ctl <= 0.3)}; a controller with a core of its "
              f"own would top out near {1000 / ctl:.0f} flows/s")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
