"""Which fuzzer finds more of the DPI core per second: fuzz_core.py's own mutator or atheris.

Usage: python bench/fuzz_core_compare.py [--seconds 30] [--reps 3]
       python bench/fuzz_core_compare.py --run own|atheris --seconds S   (one measured run)
       python bench/fuzz_core_compare.py --run atheris --no-trace --seconds S   (a crash hunt)

Each run is a fresh process that fuzzes every profile x reassembly mode for S seconds under the
same line tracer (sys.settrace, only frames of tspulab/dpi record), then prints one JSON line:
packets tried, exceptions, and the lines of tspulab/dpi executed. The two fuzzers alternate
(own, atheris, own, atheris, ...) so machine load hits both alike; the summary gives lines covered
and packets per second as min/median/max over the repetitions, and the ratio atheris/own.

atheris (libFuzzer, coverage-guided) is not a project dependency: it is imported from the
environment, or from $ATHERIS_PATH (e.g. `pip install --target /tmp/atheris atheris`). Its
target reads one input as: byte 0 picks the engine, byte 1 the link type, then frames each
prefixed by a 2-byte length; the seed corpus is the capture frames, a few consecutive ones per
input. Each engine keeps its state across inputs, as in fuzz_core.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

DPI = str(ROOT / "tspulab" / "dpi")


class LineTracer:
    """Lines of tspulab/dpi executed (file, line), recorded by sys.settrace."""

    def __init__(self) -> None:
        self.lines: set[tuple[str, int]] = set()

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.lines.add((frame.f_code.co_filename, frame.f_lineno))
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename.startswith(DPI):
            self.lines.add((frame.f_code.co_filename, frame.f_lineno))
            return self._local
        return None

    def start(self) -> None:
        sys.settrace(self._global)

    def stop(self) -> None:
        sys.settrace(None)


def run_own(seconds: float) -> dict[str, Any]:
    import fuzz_core

    tracer = LineTracer()
    tracer.start()
    report = fuzz_core.fuzz(total=10**12, seed=random.randrange(1 << 30), seconds=seconds)
    tracer.stop()
    return {
        "fuzzer": "own",
        "packets": report.packets,
        "exceptions": sum(report.exceptions.values()),
        "lines": len(tracer.lines),
        "seconds": report.seconds,
    }


def _encode(index: int, linktype: int, frames: list[bytes]) -> bytes:
    out = bytearray([index % 256, 0 if linktype == 1 else 1])  # 1: Ethernet
    for frame in frames:
        out += len(frame).to_bytes(2, "big") + frame
    return bytes(out)


def run_atheris(seconds: float, trace: bool = True) -> dict[str, Any]:
    extra = os.environ.get("ATHERIS_PATH")
    if extra:
        sys.path.insert(0, extra)
    import atheris

    with atheris.instrument_imports(include=["tspulab"]):  # coverage feedback from tspulab only
        import fuzz_core

    seeds = fuzz_core.load_seeds()
    registry, names = fuzz_core.seed_registry(seeds)
    targets = fuzz_core.make_targets(registry, names)
    corpus = Path(tempfile.mkdtemp(prefix="fuzz-corpus-"))
    rng = random.Random(1)
    for n in range(0, len(seeds), 4):
        run = seeds[n : n + rng.choice((1, 2, 4))]
        data = _encode(rng.randrange(len(targets)), run[0].linktype, [s.frame for s in run])
        (corpus / f"seed-{n}").write_bytes(data)
    state = {"packets": 0, "exceptions": 0, "now": 1_000_000.0}
    tracer = LineTracer()
    began: list[float] = []  # set by the first input (libFuzzer's start-up is not counted)

    def one_input(data: bytes) -> None:
        if not began:
            began.append(time.perf_counter())
        if time.perf_counter() - began[0] > seconds:
            tracer.stop()
            result = {
                "fuzzer": "atheris",
                "packets": state["packets"],
                "exceptions": state["exceptions"],
                "lines": len(tracer.lines),
                "seconds": time.perf_counter() - began[0],
            }
            print(json.dumps(result), flush=True)
            os._exit(0)  # libFuzzer's exit skips atexit; the figures are printed above
        if len(data) < 2:
            return
        engine = targets[data[0] % len(targets)].engine
        linktype = fuzz_core.LINKTYPE_ETHERNET if data[1] % 2 == 0 else fuzz_core.LINKTYPE_RAW
        at = 2
        while at < len(data):
            size = int.from_bytes(data[at : at + 2], "big")
            frame = data[at + 2 : at + 2 + size]
            at += 2 + size
            state["now"] += 0.002
            state["packets"] += 1
            try:
                engine.process(frame, state["now"], linktype=linktype)
            except Exception:
                state["exceptions"] += 1

    if trace:  # else a plain crash hunt, which the line tracer would only slow
        tracer.start()
    atheris.Setup([sys.argv[0], "-rss_limit_mb=4096", "-max_len=4096", str(corpus)], one_input)
    atheris.Fuzz()
    raise AssertionError("atheris returned")


def compare(seconds: float, reps: int) -> None:
    results: dict[str, list[dict[str, Any]]] = {"own": [], "atheris": []}
    for _ in range(reps):
        for fuzzer in ("own", "atheris"):
            out = subprocess.run(
                [sys.executable, __file__, "--run", fuzzer, "--seconds", str(seconds)],
                capture_output=True,
                text=True,
                timeout=seconds * 10 + 300,
            )
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                print(f"{fuzzer} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            results[fuzzer].append(json.loads(lines[-1]))
            print(lines[-1], flush=True)

    def spread(name: str, key: str) -> str:
        values = [r[key] / r["seconds"] if key == "packets" else r[key] for r in results[name]]
        if not values:
            return "n/a"
        return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"

    print(f"\n{seconds:g} s per run, {reps} runs each, interleaved (min / median / max)")
    for name in ("own", "atheris"):
        exceptions = sum(r["exceptions"] for r in results[name])
        print(
            f"  {name:8s} lines of tspulab/dpi covered {spread(name, 'lines')}; "
            f"packets/s {spread(name, 'packets')}; exceptions {exceptions}"
        )
    if results["own"] and results["atheris"]:
        pairs = zip(results["own"], results["atheris"], strict=False)
        ratios = sorted(a["lines"] / o["lines"] for o, a in pairs)
        print(
            "  lines atheris/own per repetition: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f" (median {statistics.median(ratios):.2f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--run", choices=("own", "atheris"))
    parser.add_argument("--no-trace", action="store_true", help="--run atheris as a crash hunt")
    args = parser.parse_args()
    if args.run == "own":
        print(json.dumps(run_own(args.seconds)), flush=True)
    elif args.run == "atheris":
        run_atheris(args.seconds, trace=not args.no_trace)
    else:
        compare(args.seconds, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
