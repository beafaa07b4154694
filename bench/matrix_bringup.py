"""What each tool adds to a matrix lab's bring-up: its server's start, its client's start and the
first fetch through it, measured in one lab, tools in a shuffled order every round.

One lab (one ISP, profile rkn-2018-ip, the target blocked by address) comes up without methods;
then for every round and every tool, in an order shuffled per round: the tool's server starts in
the hosting cloud (ready as docs/methods.md says: the real tool answers), its client starts in
the subscriber (the first `access`), one 64 KiB fetch goes through it, and everything of the
tool stops. The lab's own bring-up (switches, controller, nginx, resolver) is printed beside, so
a lab of the matrix costs about the lab plus the servers of its methods.

Run: ``.venv/bin/python bench/matrix_bringup.py [--rounds 3] [--methods all|a,b,...]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tspulab.lab.sandbox import run_in_sandbox
from tspulab.matrix.catalogue import DEFAULT_METHODS, DIRECT, TARGET_SERVICE, lab_scenario_text

#: One setting of every tool the matrix runs by default.
TOOLS = tuple(m for m in DEFAULT_METHODS if m != DIRECT)


def quiet(*_: object) -> None:
    pass


def measure(runs: Path, methods: tuple[str, ...], rounds: int, seed: int) -> dict[str, Any]:
    """Inside a sandbox: the lab once, every tool `rounds` times."""
    from tspulab.methods.lab import LabMethods
    from tspulab.scenario.live import LiveLab
    from tspulab.scenario.schema import load_scenario_text

    full = load_scenario_text(
        lab_scenario_text("bringup", methods, ("rkn-2018-ip",), 15.0), runs / "bringup.yaml"
    )
    entries = {c.name: c for c in full.circumvention}
    bare = full.model_copy(update={"circumvention": ()})
    started = time.monotonic()
    rng = random.Random(seed)
    out: dict[str, Any] = {"server": {}, "client": {}, "fetch": {}, "failed": []}
    with LiveLab(bare, runs, log=quiet) as live:
        out["lab_s"] = time.monotonic() - started
        sub = live.subscribers[0]
        host = live.host(sub)
        url = f"https://{live.scenario.service(TARGET_SERVICE).domains[0]}/bulk"
        for r in range(rounds):
            order = list(methods)
            rng.shuffle(order)
            for name in order:
                lab = LabMethods(
                    [entries[name]], live.run_dir / f"round{r}", live.record, clients=1, log=quiet
                )
                try:
                    t0 = time.monotonic()
                    lab.start_servers(
                        live.host,
                        lambda cloud: [str(p) for p in live.scenario.cloud(cloud).prefixes],
                    )
                    t1 = time.monotonic()
                    lab.access(name, host)
                    t2 = time.monotonic()
                    got = lab.probe(
                        name, host, url, ca=live.ca.ca_path, timeout_s=15.0, expect_bytes=65536,
                        extra_curl=["-r", "0-65535"],
                    )  # fmt: skip
                    t3 = time.monotonic()
                    if not got.ok:
                        out["failed"].append(f"{name} round {r + 1}: {got.outcome}")
                    for key, value in (
                        ("server", t1 - t0),
                        ("client", t2 - t1),
                        ("fetch", t3 - t2),
                    ):
                        out[key].setdefault(name, []).append(value)
                except Exception as exc:
                    out["failed"].append(f"{name} round {r + 1}: {type(exc).__name__}: {exc}")
                finally:
                    lab.stop()
    return out


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return " / ".join(f"{v:.2f}" for v in (min(values), statistics.median(values), max(values)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(TOOLS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from tspulab.matrix.catalogue import BY_NAME

    methods = tuple(BY_NAME) if args.methods == "all" else tuple(args.methods.split(","))
    runs = Path(tempfile.mkdtemp(prefix="tspulab-bringup-bench-"))
    got = run_in_sandbox(measure, runs, methods, args.rounds, args.seed)
    print(f"lab without methods (1 ISP): {got['lab_s']:.1f} s")
    print(f"{'tool':<21} | server start s       | client start s       | first 64 KiB fetch s")
    print(f"{'':<21} | min / median / max   | min / median / max   | min / median / max")
    for name in methods:
        cols = [spread(got[k].get(name, [])) for k in ("server", "client", "fetch")]
        print(f"{name:<21} | {cols[0]:<20} | {cols[1]:<20} | {cols[2]}")
    servers = [statistics.median(v) for v in got["server"].values()]
    print(
        f"\nservers of all {len(servers)} tools, one after another: {sum(servers):.1f} s (medians)"
    )
    for line in got["failed"]:
        print(f"failed: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
