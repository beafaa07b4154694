"""`tspulab strategies`: the sweep table, the diff between two profiles, a capture diagnosed.

    tspulab strategies --profile tspu-2022 [--profile ...] [--target twitter.com] [--trials 3]
    tspulab strategies --diff tspu-2022 tspu-2026-reassembly
    tspulab strategies --from-capture failing.pcap [--profile ...]
    tspulab strategies --profile tspu-2022 --only 'split:sni' --only 'tlsrec:1' --no-pairs
    tspulab strategies --lab --profile tspu-2022 --only 'split:sni'   # the OVS lab's TSPU

Writes ``sweep.json`` and ``table.md`` (and the captures) to ``--out`` (default
``runs/strategies-<time>``). Needs root for the bench's namespaces; ``--from-capture`` does not.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from tspulab.strategies.sweep import TCP_SINGLES, UDP_SINGLES, StrategyResult, Sweep, ranked


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", action="append", default=[], metavar="NAME",
                   help="profile to judge against (repeatable)")  # fmt: skip
    p.add_argument("--diff", nargs=2, metavar=("P1", "P2"),
                   help="what works under P1 and not under P2, and the reverse")  # fmt: skip
    p.add_argument("--from-capture", metavar="PCAP",
                   help="which profile behaviour a failing capture shows")  # fmt: skip
    p.add_argument("--target", default="twitter.com", help="host name to reach (in the registry)")
    p.add_argument("--transport", choices=("tcp", "udp"), default="tcp",
                   help="HTTPS over TCP, or QUIC")  # fmt: skip
    p.add_argument("--trials", type=int, default=3, help="connections per strategy")
    p.add_argument("--only", action="append", default=[], metavar="SPEC",
                   help="sweep these instead of the built-in singles (repeatable)")  # fmt: skip
    p.add_argument("--no-pairs", action="store_true", help="singles only")
    p.add_argument("--live", action="store_true",
                   help="the profile's engine acts live (a run per profile)")  # fmt: skip
    p.add_argument("--lab", action="store_true",
                   help="against the OVS lab TSPU in a sandbox, a lab per profile")  # fmt: skip
    p.add_argument("--labs", type=int, default=2, metavar="N",
                   help="--lab: labs at once (they share the strategies out)")  # fmt: skip
    p.add_argument("--hops", metavar="TSPU,BORDER",
                   help="--lab: the TSPU after TSPU routers, the border at hop BORDER "
                   "(scenario hops:, docs/scenario.md); fakes need ttl=TSPU+1")  # fmt: skip
    p.add_argument("--max-pairs", type=int, default=30)
    p.add_argument("--out", help="directory for sweep.json, table.md and the captures")


def table(results: Sequence[StrategyResult], profile: str, live: bool = False) -> list[str]:
    extra = " replay agrees |" if live else ""
    lines = [
        f"### {profile}",
        "",
        f"| rank | strategy | success | TTFB ms (median) | why not |{extra}",
        f"|---:|---|---:|---:|---|{'---:|' if live else ''}",
    ]
    for i, r in enumerate(ranked(results, profile), 1):
        ttfb = r.ttfb_ms(profile)
        n = len(r.trials_of(profile))
        agree = f" {r.replay_agrees.get(profile, 0)}/{n} |" if live else ""
        lines.append(
            f"| {i} | `{r.strategy}` | {r.success_count(profile)}/{n} | "
            f"{'' if ttfb is None else f'{ttfb:.1f}'} | {r.why(profile)} |{agree}"
        )
    return lines


def diff(results: Sequence[StrategyResult], p1: str, p2: str) -> list[str]:
    lines = [f"### {p1} -> {p2}", ""]
    stopped = [r for r in results if r.success_count(p1) > r.success_count(p2)]
    started = [r for r in results if r.success_count(p2) > r.success_count(p1)]
    lines.append(f"Stopped working ({len(stopped)}):")
    lines += [
        f"- `{r.strategy}`: {r.success_count(p1)}/{len(r.trials_of(p1))} -> "
        f"{r.success_count(p2)}/{len(r.trials_of(p2))} ({r.why(p2)})"
        for r in stopped
    ] or ["- none"]
    lines.append(f"Started working ({len(started)}):")
    lines += [
        f"- `{r.strategy}`: {r.success_count(p1)}/{len(r.trials_of(p1))} -> "
        f"{r.success_count(p2)}/{len(r.trials_of(p2))}"
        for r in started
    ] or ["- none"]
    return lines


def run_strategies_cli(args: argparse.Namespace) -> int:
    if args.from_capture:
        from tspulab.strategies.diagnose import diagnose_cli

        return diagnose_cli(args.from_capture, args.profile, args.target)
    profiles: list[str] = list(args.profile)
    if args.diff:
        profiles += [p for p in args.diff if p not in profiles]
    if not profiles:
        print("tspulab strategies: give --profile, --diff or --from-capture", file=sys.stderr)
        return 2
    from tspulab.dpi.profile import ProfileError, load_profile
    from tspulab.strategies.bench import BenchError
    from tspulab.strategies.spec import StrategySpecError, parse_any

    try:
        for p in profiles:
            load_profile(p)
        singles = args.only or list(UDP_SINGLES if args.transport == "udp" else TCP_SINGLES)
        # Canonical strings from here on (a YAML file is read once, outside the sandbox, whose
        # /tmp is private); the control always runs first, so a 'none' would only repeat it.
        parsed = [parse_any(spec) for spec in singles]
        singles = [s.text() for s in parsed if s.steps]
    except (ProfileError, StrategySpecError) as err:
        print(f"tspulab strategies: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/strategies-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.lab:
        if args.transport != "tcp":
            print("tspulab strategies: --lab runs TCP strategies only", file=sys.stderr)
            return 2
        try:
            hops = _hops(args.hops)
        except ValueError as err:
            print(f"tspulab strategies: --hops: {err}", file=sys.stderr)
            return 2
        results = _lab_results(
            profiles, args.target, singles, args.trials, out,
            0 if args.no_pairs else args.max_pairs, labs=max(1, args.labs), hops=hops,
        )  # fmt: skip
        return _report(args, profiles, results, time.monotonic() - started, out, "lab")
    # SIGTERM unwinds like Ctrl-C, so the bench ends its processes and deletes its namespaces;
    # the run sandbox (its own network, PID and mount namespaces) covers a SIGKILL too.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        from tspulab.lab.sandbox import run_in_sandbox

        results = run_in_sandbox(
            bench_sweep, args.target, out.resolve(), args.transport, profiles, args.trials,
            args.live, singles, not args.no_pairs, args.max_pairs,
            timeout_s=600 + 60 * args.trials * len(profiles) * (len(singles) + args.max_pairs),
        )  # fmt: skip
    except BenchError as err:
        print(f"tspulab strategies: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tspulab strategies: interrupted; the bench was taken down", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _report(
        args, profiles, results, time.monotonic() - started, out, "live" if args.live else "replay"
    )


def bench_sweep(
    target: str,
    out: Path,
    transport: str,
    profiles: Sequence[str],
    trials: int,
    live: bool,
    singles: Sequence[str],
    pairs: bool,
    max_pairs: int,
) -> list[StrategyResult]:
    """The sweep on a bench (run in a run sandbox by the command)."""
    from tspulab.strategies.bench import Bench

    with Bench(target=target, workdir=out, quic=transport == "udp") as bench:
        sweep = Sweep(bench, profiles, trials, transport, live=live)
        return sweep.run(singles, pairs=pairs, max_pairs=max_pairs)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _hops(text: str | None) -> tuple[int, int] | None:
    """'2,5' -> (2, 5), checked as the scenario key checks it."""
    if text is None:
        return None
    from tspulab.topologies.hops import PathHops

    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{text!r} is not TSPU,BORDER (two whole numbers, e.g. 2,5)")
    hops = PathHops(tspu=int(parts[0]), border=int(parts[1]))
    return hops.tspu, hops.border


def _lab_results(
    profiles: Sequence[str],
    target: str,
    singles: Sequence[str],
    trials: int,
    out: Path,
    max_pairs: int,
    labs: int = 1,
    hops: tuple[int, int] | None = None,
) -> list[StrategyResult]:
    """The singles in labs of every profile, then the pairs (labsweep.py), merged into one
    result per strategy. Each profile's strategies are shared out among ``labs`` labs that run
    at once, each in its own sandbox (a lab per profile per share)."""
    from tspulab.strategies.sweep import pair_candidates

    merged: dict[str, StrategyResult] = {}
    _lab_round(merged, profiles, target, singles, trials, out, True, labs, hops)
    pairs = [c.text() for c in pair_candidates(list(merged.values()), profiles, trials, max_pairs)]
    if pairs:
        _lab_round(merged, profiles, target, pairs, trials, out, False, labs, hops)
    return list(merged.values())


def _lab_round(
    merged: dict[str, StrategyResult],
    profiles: Sequence[str],
    target: str,
    specs: Sequence[str],
    trials: int,
    out: Path,
    control: bool,
    labs: int,
    hops: tuple[int, int] | None,
) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tspulab.strategies.labsweep import run_lab

    # Each profile's strategies dealt round-robin into shares: a lab per (profile, share); the
    # control runs in every profile's first share. run_lab blocks on its sandbox's child
    # process, so threads are enough to run `labs` of them at once.
    per = max(1, labs // len(profiles)) if len(profiles) < labs else 1
    jobs = [
        (profile, list(specs[k::per]), control and k == 0)
        for profile in profiles
        for k in range(min(per, len(specs)) or 1)
    ]
    what = "control and " if control else ""
    print(f"{len(jobs)} lab(s), {labs} at once: {what}{len(specs)} strategies per profile, "
          f"{trials} trials each", flush=True)  # fmt: skip
    finished: dict[tuple[str, str], StrategyResult] = {}
    with ThreadPoolExecutor(max_workers=labs) as pool:
        running = {
            pool.submit(run_lab, p, target, share, trials, out / "labs", first, hops): p
            for p, share, first in jobs
        }
        for done in as_completed(running):
            profile = running[done]
            for r in done.result():
                finished[(r.strategy, profile)] = r
                counts = f"{r.success_count(profile)}/{len(r.trials)}"
                error = f"  ERROR {r.error}" if r.error else ""
                print(f"  {r.strategy:44s} {profile}={counts}{error}", flush=True)
    # Merged in the order of the specs, not of the labs' finishing: the pairs chosen from these
    # results, and the order of equal rows in the tables, must not depend on which lab was first.
    rank = {name: i for i, name in enumerate(["none", *specs])}

    def place(item: tuple[tuple[str, str], StrategyResult]) -> tuple[int, int]:
        (name, profile), _ = item
        return rank.get(name, len(rank)), list(profiles).index(profile)

    for (name, profile), r in sorted(finished.items(), key=place):
        m = merged.setdefault(name, StrategyResult(name, [], {}, 0.0))
        m.live_trials[profile] = r.trials
        m.judged[profile] = r.judged[profile]
        m.seconds += r.seconds
        m.error = m.error or r.error


def _report(
    args: argparse.Namespace,
    profiles: Sequence[str],
    results: Sequence[StrategyResult],
    elapsed: float,
    out: Path,
    mode: str,
) -> int:
    how = {
        "replay": "(replay of the capture at the box).",
        "live": "(the profile's engine acting live on the bench; 'replay agrees' counts the "
        "trials whose replayed capture gave the same pass or fail).",
        "lab": "(the OVS lab's TSPU, the controller's verdicts).",
    }[mode]
    lines = [
        f"# Strategy sweep: {args.target} over {args.transport}, {args.trials} trials each",
        "",
        f"{len(results)} strategies in {elapsed:.0f} s; a trial succeeds when the real server "
        f"answered and the profile's verdict on the connection let it through {how}",
        "",
    ]
    for p in profiles:
        lines += [*table(results, p, mode == "live"), ""]
    if args.diff:
        lines += diff(results, *args.diff)
    text = "\n".join(lines)
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "sweep.json").write_text(json.dumps({
        "target": args.target, "transport": args.transport, "trials": args.trials,
        "mode": mode,
        "profiles": list(profiles), "seconds": round(elapsed, 1),
        "results": [r.to_json(profiles) for r in results],
    }, indent=1))  # fmt: skip
    print(f"\nwritten: {out}/table.md, {out}/sweep.json, captures in {out}/captures")
    return 0
