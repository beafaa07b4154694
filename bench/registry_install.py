#!/usr/bin/env python3
"""Installing a Telegram-2018-size registry into the TSPU switch: how long, and how many rules.

The registry is the four Telegram 2018 stage files merged (data/telegram-2018/stage0..3, about
8,200 entries), aggregated into the fewest exact prefixes, two drop rules each. Two ways in:

- boot: the demo scenario with that registry; the controller installs every rule when the TSPU
  switch connects and logs `tspu-rules-installed` with the seconds from sending the first rule
  to the switch's barrier reply;
- push: the demo scenario with stage 0 only; the whole set then arrives as one registry diff
  through the control socket (`LiveLab.push_registry`); timed from the push until the switch
  holds every rule (polled with `ovs-ofctl dump-aggregate`), and the diff back to stage 0.

Each lab checks the switch really holds the rules and that a listed address is blocked while an
unlisted one is not. Goal (issue 6): ≤ 10 s.

    sudo .venv/bin/python bench/registry_install.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labbench import controller_events, flow_count, in_lab, median, scenario, verdict
from labbench import with_registry_files as with_files

from tspulab.controllers.pipeline import COOKIE_REGISTRY
from tspulab.dpi.registry import Registry, load_list
from tspulab.scenario.build import build_registry
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario
from tspulab.scenario.paths import data_dir

DATA = data_dir()
STAGES = sorted((DATA / "telegram-2018").glob("stage*.txt"))


def full_registry() -> Registry:
    registry = Registry()
    for path in STAGES:
        registry.merge(load_list(path))
    return registry


def pick_services(base: Scenario, registry: Registry) -> tuple[str, str]:
    """A service whose address the registry lists, and one it does not."""
    listed = [s.name for s in base.services if registry.contains_address(str(s.address))]
    free = [s.name for s in base.services if not registry.contains_address(str(s.address))]
    if not listed or not free:
        raise SystemExit("the scenario needs one service inside the registry and one outside")
    return listed[0], free[0]


def check_enforced(live: LiveLab, blocked: str, allowed: str) -> str:
    b = live.probe("sub1", blocked, timeout_s=2, record=False)
    a = live.probe("sub1", allowed, record=False)
    ok = not b.ok and a.ok
    return f"{blocked}: {b.outcome}, {allowed}: {a.outcome} ({'as listed' if ok else 'WRONG'})"


def total_flows(switch: str) -> int:
    """What the brief's `dump-flows | wc -l` counts (every rule, one line each)."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return sum(1 for line in out.splitlines() if "cookie=" in line)


def boot(live: LiveLab, expected: int, blocked: str, allowed: str) -> dict[str, Any]:
    sent = controller_events(live, "tspu-rules-sent")[0]
    installed = controller_events(live, "tspu-rules-installed")[0]
    return {
        "rules_sent": sent["rules"],
        "send_to_barrier_s": installed["seconds"],
        # from LiveLab's start (before OVS and the controller) to the barrier reply
        "lab_start_to_installed_s": installed["t"] - live.meta["started"],
        "lab_up_s": sum(live.lab.timings.values()),
        "registry_rules": flow_count(live.tspu_switch, COOKIE_REGISTRY),
        "all_rules": total_flows(live.tspu_switch),
        "expected": expected,
        "enforced": check_enforced(live, blocked, allowed),
    }


def wait_rules(switch: str, want: int, timeout_s: float = 60.0) -> float:
    started = time.monotonic()
    while flow_count(switch, COOKIE_REGISTRY) != want:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{switch} never held {want} registry rules")
        time.sleep(0.02)
    return time.monotonic() - started


def push(
    live: LiveLab, full: Registry, expected: int, blocked: str, allowed: str
) -> dict[str, Any]:
    small = live.registry
    small_rules = flow_count(live.tspu_switch, COOKIE_REGISTRY)
    started = time.monotonic()
    reply = live.push_registry(full)
    installed = time.monotonic() - started + wait_rules(live.tspu_switch, expected)
    enforced = check_enforced(live, blocked, allowed)
    started = time.monotonic()
    back = live.push_registry(small)
    removed = time.monotonic() - started + wait_rules(live.tspu_switch, small_rules)
    return {
        "added": reply["added"],
        "controller_send_s": reply["seconds"],
        "push_to_installed_s": installed,
        "registry_rules": expected,
        "enforced": enforced,
        "removed": back["removed"],
        "push_back_to_removed_s": removed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if len(STAGES) != 4:
        print(f"skipped: the four Telegram 2018 stage files are not in {DATA}/telegram-2018")
        return 0
    demo = scenario(args.scenario)
    full = full_registry()
    prefixes = full.aggregated_prefixes()
    expected = 2 * len(prefixes)
    big = with_files(demo, [f"data:telegram-2018/{p.name}" for p in STAGES])
    small = with_files(demo, [f"data:telegram-2018/{STAGES[0].name}"])
    assert build_registry(big).aggregated_prefixes() == prefixes
    blocked, allowed = pick_services(demo, full)
    runs_dir = Path(tempfile.mkdtemp(prefix="tspulab-bench-"))
    print(f"registry: {full.entry_count():,} entries ({full.address_count(4):,} IPv4 addresses) "
          f"→ {len(prefixes):,} aggregated prefixes → {expected:,} drop rules; "
          f"runs in {runs_dir}")  # fmt: skip
    boots, pushes = [], []
    for r in range(1, args.rounds + 1):
        b = in_lab(big, runs_dir, True, lambda live: boot(live, expected, blocked, allowed))
        boots.append(b)
        print(f"round {r} boot: {b['rules_sent']:,} rules sent, barrier after "
              f"{b['send_to_barrier_s']:.2f} s (lab start → installed "
              f"{b['lab_start_to_installed_s']:.2f} s, lab up in {b['lab_up_s']:.1f} s); "
              f"switch holds {b['registry_rules']:,} registry rules of {b['all_rules']:,}; "
              f"{b['enforced']}", flush=True)  # fmt: skip
        p = in_lab(small, runs_dir, True, lambda live: push(live, full, expected, blocked, allowed))
        pushes.append(p)
        print(f"round {r} push: +{p['added']:,} prefixes sent by the controller in "
              f"{p['controller_send_s']:.2f} s, all {p['registry_rules']:,} rules in the switch "
              f"{p['push_to_installed_s']:.2f} s after the push; {p['enforced']}; back to stage 0 "
              f"(-{p['removed']:,} prefixes) in {p['push_back_to_removed_s']:.2f} s",
              flush=True)  # fmt: skip
    boot_s = median([b["send_to_barrier_s"] for b in boots])
    push_s = median([p["push_to_installed_s"] for p in pushes])
    print(f"median: boot install {boot_s:.2f} s, push install {push_s:.2f} s for {expected:,} "
          f"rules (goal ≤ 10 s: {verdict(max(boot_s, push_s) <= 10)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
