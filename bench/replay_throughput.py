"""Classify throughput of the DPI core against nDPI's ndpiReader on the same packets.

Usage: python bench/replay_throughput.py [--packets 1000000] [--reassembly none] [--profile]

Method, chosen to be fair to both:
- Input: the shipped nDPI test captures (tests/data/pcaps/ndpi/pcap). Their IP packets
  (link headers stripped, non-IP frames dropped, so both tools see exactly the same packets) are
  written to ONE raw-IP pcap (linktype 101), repeated until it holds >= --packets packets. Each
  repetition is shifted by 10^6 s and each capture by 10^4 s, so every repetition's flows are new
  flows to both tools (both expire idle flows long before), as if the captures had been recorded
  again; no flow can take the decided fast path across repetitions.
- Time is CPU time (user + system), not wall time: the machine is shared (2 cores, often a load
  of 8-10), and CPU time is what load disturbs least. Rounds interleave the two tools, so a change
  in load hits both, and the ratio is printed per round with its min / median / max.
- nDPI: ``ndpiReader -i big.pcap -q``, one process per round; its CPU time minus the least CPU
  time of the same command on a one-packet file (start-up: protocol tables, automata) is its
  packet time. That includes libpcap reading the page-cached file, which tspulab is spared (its
  frames are in memory), so the comparison slightly favours tspulab.
- tspulab: the same file read into memory first (not timed); then decode -> flow lookup ->
  classify for every packet, in one flow table. Once as a controller runs it (JA3/JA4 computed
  only if read), once reading each deciding ClientHello's JA3 and JA4 (what ndpiReader always
  computes), and once as ``tspulab replay`` loops (decided flows by ``fastpath.count_decided``).
  The decode + lookup floor (no classify) is reported too.
- Pure and compiled (tspulab/dpi/compiled.py): each round runs the tspulab loops twice, in two
  child processes, one with ``TSPULAB_DPI_PURE=1`` (every module from its .py) and one with the
  compiled modules the build made (their order alternating from round to round), then
  ndpiReader: pure, compiled and nDPI interleaved, each child timing only its loops (CPU time),
  so all three see the same load. Each child reports how many compiled modules it ran (the pure
  one must run none) and the script prints it. Each child freezes its in-memory frames out of
  the garbage collector's full collections before timing (``gc.freeze``; the harness holds 1 M
  frames that ``tspulab replay`` streams instead).
- ``--replay``: ``tspulab replay --json`` on the looped file in a child process, end to end
  (reading, decoding, classifying, one JSON line per flow), pure and compiled: wall time, CPU
  time and peak RSS.
- Memory: tracemalloc around a flow table of 100 000 TCP flows, each one real ClientHello
  decided as TLS (the verdict and its strings cached on the flow), reported per 100 k flows.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import ipaddress
import json
import math
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import dpkt

from tspulab.dpi import compiled, fastpath
from tspulab.dpi.classify import Classifier
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.flow import FlowTable
from tspulab.dpi.packet import LINKTYPE_RAW, decode
from tspulab.dpi.pcap import read_capture

Frame = tuple[float, int, bytes]
_IP_OFFSET = {0: 4, 12: 0, 101: 0, 113: 16, 228: 0, 229: 0, 276: 20}


def captures_dir() -> Path:
    """The shipped nDPI captures (tests/data/pcaps/ndpi/pcap in the repository)."""
    return Path(__file__).resolve().parent.parent / "tests" / "data" / "pcaps" / "ndpi" / "pcap"


def ip_offset(linktype: int, frame: bytes) -> int | None:
    """Where the IP header starts, or None for a non-IP frame."""
    if linktype == 1:
        offset, ethertype = 14, int.from_bytes(frame[12:14], "big")
        while ethertype in (0x8100, 0x88A8):
            ethertype, offset = int.from_bytes(frame[offset + 2 : offset + 4], "big"), offset + 4
        return offset if ethertype in (0x0800, 0x86DD) else None
    offset = _IP_OFFSET.get(linktype)
    if offset is None or len(frame) <= offset or frame[offset] >> 4 not in (4, 6):
        return None
    return offset


def write_looped_pcap(paths: list[Path], target: int, out: Path) -> int:
    """The captures' IP packets as one raw-IP pcap, repeated to >= target packets."""
    per_capture: list[list[tuple[float, bytes]]] = []
    for path in paths:
        packets = []
        first: float | None = None
        for ts, linktype, frame in read_capture(path):
            offset = ip_offset(linktype, frame)
            if offset is None:
                continue
            first = ts if first is None else first
            packets.append((ts - first, frame[offset:]))
        per_capture.append(packets)
    per_loop = sum(len(p) for p in per_capture)
    loops = math.ceil(target / per_loop)
    with out.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, linktype=LINKTYPE_RAW, nano=False)
        for loop in range(loops):
            for index, packets in enumerate(per_capture):
                base = loop * 1e6 + index * 1e4
                for ts, ip in packets:
                    writer.writepkt(ip, ts=base + ts)
    return loops * per_loop


def classify_loop(frames: list[Frame], reassembly: str, fingerprints: bool = False) -> float:
    """Seconds for decode -> lookup -> classify over ``frames`` in one flow table. With
    ``fingerprints``, each deciding ClientHello's JA3 and JA4 are read too (they are computed on
    first read; a policy without fingerprint rules never reads them)."""
    table = FlowTable()
    lookup = table.lookup
    observe = Classifier(reassembly).observe
    start = time.process_time()
    for ts, linktype, frame in frames:
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        flow = lookup(pkt, ts)
        undecided = flow.classification is None
        verdict = observe(pkt, flow, ts)
        if fingerprints and undecided and verdict is not None:
            _ = verdict.ja3, verdict.ja4
    return time.process_time() - start


def replay_loop(frames: list[Frame], reassembly: str) -> float:
    """Seconds for the replay loop of ``tspulab replay`` (``fastpath.replay``): packets of decided
    flows are accounted by ``fastpath.count_decided`` without decoding, the rest take decode ->
    lookup -> classify."""
    table = FlowTable()
    classifier = Classifier(reassembly)
    start = time.process_time()
    fastpath.replay(frames, table, classifier)
    return time.process_time() - start


def decided_path_loop(frames: list[Frame], reassembly: str) -> float:
    """The same packets once every flow is decided: the constant-time path a live box spends
    most packets on (a flow's verdict is cached after its first packets)."""
    table = FlowTable(idle_timeout=1e9)
    lookup = table.lookup
    classifier = Classifier(reassembly)
    observe = classifier.observe
    for _ts, linktype, frame in frames:
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        observe(pkt, lookup(pkt, 0.0), 0.0)
    for flow in table.flows():  # settle every flow: conclude undecided ones as the box would
        flow.classification = classifier.conclude(flow)
    start = time.process_time()
    for _ts, linktype, frame in frames:
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        observe(pkt, lookup(pkt, 0.0), 0.0)
    return time.process_time() - start


def dpkt_decode_loop(frames: list[Frame]) -> tuple[float, float]:
    """(dpkt seconds, tspulab seconds) to decode every frame to its L4 payload: the measurement
    behind choosing a hand-written decoder for the hot path (docs/dpi.md)."""
    start = time.process_time()
    for _, _, frame in frames:
        try:
            ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
            _ = ip.data.data if isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP) else ip.data
        except (dpkt.dpkt.UnpackError, IndexError):
            continue
    dpkt_s = time.process_time() - start
    start = time.process_time()
    for _, linktype, frame in frames:
        try:
            _ = decode(frame, linktype).payload
        except DecodeError:
            continue
    return dpkt_s, time.process_time() - start


def headers_only_loop(frames: list[Frame]) -> float:
    """Decode and flow lookup only: the floor under classify."""
    table = FlowTable()
    lookup = table.lookup
    start = time.process_time()
    for ts, linktype, frame in frames:
        try:
            lookup(decode(frame, linktype), ts)
        except DecodeError:
            continue
    return time.process_time() - start


def ndpi_seconds(path: Path) -> float:
    """CPU seconds (user + system) of one ``ndpiReader -i path -q`` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        ["ndpiReader", "-i", str(path), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def memory_per_100k_flows(hello_frame: Frame, reassembly: str) -> float:
    """Bytes that 100 000 decided TLS flows keep alive (table, flow states, verdicts): each flow
    is the real curl ClientHello of 443-curl.pcap from another client address and port."""
    _, linktype, frame = hello_frame
    template = decode(frame, linktype)
    classifier = Classifier(reassembly)
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = FlowTable()
    for i in range(100_000):
        template.src = (base + i // 50_000).to_bytes(4, "big")
        template.sport = 1024 + i % 50_000
        flow = table.lookup(template, 0.0)
        if classifier.observe(template, flow, 0.0) is None:
            raise RuntimeError("the ClientHello frame was not classified")
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(table) == 100_000
    return float(after - before)


def spread(values: list[float], unit: str = "", scale: float = 1.0, fmt: str = ".0f") -> str:
    """min / median / max of a measurement, as the preamble asks benchmarks to print."""
    ordered = sorted(v * scale for v in values)
    lo, mid, hi = ordered[0], statistics.median(ordered), ordered[-1]
    return f"{lo:{fmt}} / {mid:{fmt}} / {hi:{fmt}}{unit} (min / median / max of {len(values)})"


def replay_end_to_end(big: Path, pure: bool) -> tuple[float, float, int]:
    """`tspulab replay --json` on the file in a child process: (wall seconds, CPU seconds, peak
    RSS bytes) of that child alone (os.wait4, so earlier children such as ndpiReader do not
    count)."""
    exe = Path(sys.executable).with_name("tspulab")
    start = time.perf_counter()
    child = subprocess.Popen(
        [str(exe), "replay", "--json", str(big)], stdout=subprocess.DEVNULL, env=_env(pure)
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"tspulab replay exited {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def _env(pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    return {**env, compiled.PURE_ENV: "1"} if pure else env


def child_loops(big: Path, reassembly: str) -> dict[str, float]:
    """What one child process measures (``--child``): CPU seconds of the three tspulab loops on
    the file's frames, and how many of the DPI modules it runs compiled."""
    frames = list(read_capture(big))
    gc.collect()
    gc.freeze()  # the harness's 1 M in-memory frames stay out of full collections (not timed)
    out = {
        "classify": classify_loop(frames, reassembly),
        "fingerprints": classify_loop(frames, reassembly, fingerprints=True),
        "replay": replay_loop(frames, reassembly),
        "compiled": float(sum(compiled.in_use(m) for m in compiled.COMPILED)),
    }
    return out


def run_child(big: Path, reassembly: str, pure: bool) -> dict[str, float]:
    """The tspulab loops in a child process, pure (``TSPULAB_DPI_PURE=1``) or compiled."""
    cmd = [sys.executable, __file__, "--child", str(big), "--reassembly", reassembly]
    done = subprocess.run(cmd, env=_env(pure), check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    if pure and figures["compiled"]:
        raise RuntimeError("the pure child ran compiled modules")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--reassembly", default="none", choices=("none", "tcp", "tls-records"))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved tspulab/nDPI rounds")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print the top of a cProfile run in this process (it cannot see inside compiled "
        "modules: run with TSPULAB_DPI_PURE=1, or use py-spy --native)",
    )
    parser.add_argument("--skip-ndpi", action="store_true")
    parser.add_argument(
        "--replay", action="store_true", help="also time `tspulab replay` on the file end to end"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child_loops(args.child, args.reassembly)))
        return 0

    paths = sorted(captures_dir().glob("*.pcap*"))
    if not paths:
        print(f"no captures under {captures_dir()}", file=sys.stderr)
        return 2
    states = compiled.status()
    built = sum(s.compiled for s in states)
    print(f"compiled DPI modules: {built} of {len(states)}")
    for state in states:
        if not state.compiled:
            print(f"  pure: {state.module} ({state.reason})")
    with tempfile.TemporaryDirectory(prefix="tspulab-bench-") as tmp:
        big = Path(tmp) / "looped.pcap"
        n = write_looped_pcap(paths, args.packets, big)
        tiny = Path(tmp) / "one.pcap"
        write_looped_pcap([p for p in paths if p.name == "443-chrome.pcap"], 1, tiny)
        size = big.stat().st_size >> 20
        print(f"{len(paths)} captures -> {n} IP packets in one raw-IP pcap ({size} MiB)")
        # The end-to-end replays run first: a child forked later would start with this process's
        # frames in memory, and its peak RSS would count them.
        replay_figures = (
            [(pure, replay_end_to_end(big, pure)) for pure in (True, False)] if args.replay else []
        )
        use_ndpi = not args.skip_ndpi and shutil.which("ndpiReader") is not None
        startup = min(ndpi_seconds(tiny) for _ in range(3)) if use_ndpi else 0.0
        runs: dict[str, list[dict[str, float]]] = {"pure": [], "compiled": []}
        ndpi: list[float] = []
        for round_ in range(args.rounds):  # interleaved, so load changes hit all three alike
            # pure first in even rounds, compiled first in odd ones: no order bias in the ratio
            for kind in ("pure", "compiled") if round_ % 2 == 0 else ("compiled", "pure"):
                runs[kind].append(run_child(big, args.reassembly, pure=kind == "pure"))
            if use_ndpi:
                ndpi.append(ndpi_seconds(big) - startup)
        mode = f"({args.reassembly})"
        for kind, rounds in runs.items():
            in_use = int(rounds[0]["compiled"])
            print(f"{kind} ({in_use} of {len(states)} modules compiled):")
            rate = {k: [n / r[k] for r in rounds] for k in ("classify", "fingerprints", "replay")}
            print(f"  tspulab classify {mode:<13} : {spread(rate['classify'], ' k/s', 1e-3)}")
            print(
                f"  ... reading JA3+JA4 of each    : {spread(rate['fingerprints'], ' k/s', 1e-3)}"
            )
            print(f"  replay loop (fast path)        : {spread(rate['replay'], ' k/s', 1e-3)}")
            if use_ndpi:
                for k in ("replay", "classify"):
                    ratios = [r[k] / nd for r, nd in zip(rounds, ndpi, strict=True)]
                    print(f"  ratio nDPI / {k:<8} per round : {spread(ratios, ' x', 1.0, '.1f')}")
        if use_ndpi:
            print(
                f"ndpiReader (nDPI 4.2)            : {spread([n / s for s in ndpi], ' k/s', 1e-3)}"
            )
            gains = [
                p["replay"] / c["replay"]
                for p, c in zip(runs["pure"], runs["compiled"], strict=True)
            ]
            print(f"replay loop, pure / compiled time: {spread(gains, ' x', 1.0, '.2f')}")
        elif not args.skip_ndpi:
            print("ndpiReader not installed (Debian libndpi-bin)")
        frames = list(read_capture(big))
        dpkt_s, ours_decode_s = dpkt_decode_loop(frames[:200_000])
        print(
            f"decode only (this process): dpkt {200_000 / dpkt_s / 1e3:.0f} k/s, "
            f"tspulab.dpi.packet {200_000 / ours_decode_s / 1e3:.0f} k/s"
        )
        floor_s = headers_only_loop(frames)
        print(f"decode + flow lookup only      : {n / floor_s / 1e3:8.0f} k packets/s")
        fast_s = decided_path_loop(frames, args.reassembly)
        print(f"decided flows only (fast path) : {n / fast_s / 1e3:8.0f} k packets/s")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            classify_loop(frames[: len(frames) // 4], args.reassembly)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
        del frames
        for pure, (wall, cpu, peak) in replay_figures:
            print(
                f"tspulab replay --json, {n} packets, {'pure' if pure else 'compiled'}: wall "
                f"{wall:.1f} s, CPU {cpu:.1f} s ({n / cpu / 1e3:.0f} k packets per CPU second), "
                f"peak RSS {peak / 2**20:.0f} MiB"
            )
    curl = next(p for p in paths if p.name == "443-curl.pcap")
    hello = next(f for f in read_capture(curl) if decode(f[2], f[1]).payload[:1] == b"\x16")
    mem = memory_per_100k_flows(hello, args.reassembly)
    print(f"memory per 100 k decided flows : {mem / 2**20:8.1f} MiB ({mem / 1e5:.0f} B/flow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
