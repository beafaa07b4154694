"""Classify throughput of the DPI core against nDPI's ndpiReader on the same packets.

Usage: python bench/replay_throughput.py [--packets 1000000] [--reassembly none] [--profile]

Method, chosen to be fair to both:
- Input: the shipped nDPI test captures ($TSPULAB_DATA_DIR/pcaps/ndpi/pcap). Their IP packets
  (link headers stripped, non-IP frames dropped, so both tools see exactly the same packets) are
  written to ONE raw-IP pcap (linktype 101), repeated until it holds >= --packets packets. Each
  repetition is shifted by 10^6 s and each capture by 10^4 s, so every repetition's flows are new
  flows to both tools (both expire idle flows long before), as if the captures had been recorded
  again; no flow can take the decided fast path across repetitions.
- nDPI: ``ndpiReader -i big.pcap -q`` once, one process; its wall time minus the wall time of the
  same command on a one-packet file (start-up: protocol tables, automata) is its packet time.
  That includes libpcap reading the page-cached file, which tspulab is spared (its frames are in
  memory), so the comparison slightly favours tspulab.
- tspulab: the same file read into memory first (not timed); then decode -> flow lookup ->
  classify for every packet, in one flow table, timed. The decode + lookup floor (no classify) is
  reported too.
- Memory: tracemalloc around a flow table of 100 000 TCP flows, each one real ClientHello
  decided as TLS (the verdict and its strings cached on the flow), reported per 100 k flows.
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import math
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import dpkt

from tspulab.dpi.classify import Classifier
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.flow import FlowTable
from tspulab.dpi.packet import LINKTYPE_RAW, decode
from tspulab.dpi.pcap import read_capture
from tspulab.scenario.paths import data_dir as shipped_data_dir

Frame = tuple[float, int, bytes]
_IP_OFFSET = {0: 4, 12: 0, 101: 0, 113: 16, 228: 0, 229: 0, 276: 20}


def data_dir() -> Path:
    """The shipped reference data (``data/``), or ``$TSPULAB_DATA_DIR``."""
    return shipped_data_dir()


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


def classify_loop(frames: list[Frame], reassembly: str) -> float:
    """Seconds for decode -> lookup -> classify over ``frames`` in one flow table."""
    table = FlowTable()
    lookup = table.lookup
    observe = Classifier(reassembly).observe
    start = time.perf_counter()
    for ts, linktype, frame in frames:
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        observe(pkt, lookup(pkt, ts), ts)
    return time.perf_counter() - start


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
    start = time.perf_counter()
    for _ts, linktype, frame in frames:
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        observe(pkt, lookup(pkt, 0.0), 0.0)
    return time.perf_counter() - start


def dpkt_decode_loop(frames: list[Frame]) -> tuple[float, float]:
    """(dpkt seconds, tspulab seconds) to decode every frame to its L4 payload: the measurement
    behind choosing a hand-written decoder for the hot path (docs/dpi.md)."""
    start = time.perf_counter()
    for _, _, frame in frames:
        try:
            ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
            _ = ip.data.data if isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP) else ip.data
        except (dpkt.dpkt.UnpackError, IndexError):
            continue
    dpkt_s = time.perf_counter() - start
    start = time.perf_counter()
    for _, linktype, frame in frames:
        try:
            _ = decode(frame, linktype).payload
        except DecodeError:
            continue
    return dpkt_s, time.perf_counter() - start


def headers_only_loop(frames: list[Frame]) -> float:
    """Decode and flow lookup only: the floor under classify."""
    table = FlowTable()
    lookup = table.lookup
    start = time.perf_counter()
    for ts, linktype, frame in frames:
        try:
            lookup(decode(frame, linktype), ts)
        except DecodeError:
            continue
    return time.perf_counter() - start


def ndpi_seconds(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["ndpiReader", "-i", str(path), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def ndpi_packet_seconds(big: Path, tiny: Path) -> float | None:
    """ndpiReader's time for the packets of ``big``, start-up removed; None if not installed."""
    if shutil.which("ndpiReader") is None:
        return None
    startup = min(ndpi_seconds(tiny) for _ in range(3))
    return min(ndpi_seconds(big) for _ in range(2)) - startup


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--reassembly", default="none", choices=("none", "tcp", "tls-records"))
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run")
    parser.add_argument("--skip-ndpi", action="store_true")
    args = parser.parse_args(argv)

    paths = sorted((data_dir() / "pcaps" / "ndpi" / "pcap").glob("*.pcap*"))
    if not paths:
        print(f"no captures under {data_dir()}/pcaps/ndpi/pcap", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tspulab-bench-") as tmp:
        big = Path(tmp) / "looped.pcap"
        n = write_looped_pcap(paths, args.packets, big)
        tiny = Path(tmp) / "one.pcap"
        write_looped_pcap([p for p in paths if p.name == "443-chrome.pcap"], 1, tiny)
        frames = list(read_capture(big))
        size = big.stat().st_size >> 20
        print(f"{len(paths)} captures -> {n} IP packets in one raw-IP pcap ({size} MiB)")
        dpkt_s, ours_decode_s = dpkt_decode_loop(frames[:200_000])
        print(
            f"decode only: dpkt {200_000 / dpkt_s / 1e3:.0f} k/s, "
            f"tspulab.dpi.packet {200_000 / ours_decode_s / 1e3:.0f} k/s"
        )
        floor_s = headers_only_loop(frames)
        print(f"decode + flow lookup only      : {n / floor_s / 1e3:8.0f} k packets/s")
        ours_s = classify_loop(frames, args.reassembly)
        ours = n / ours_s
        mode = f"({args.reassembly})"
        print(f"tspulab classify {mode:<13} : {ours / 1e3:8.0f} k packets/s  ({ours_s:.2f} s)")
        if not args.skip_ndpi:
            ndpi_s = ndpi_packet_seconds(big, tiny)
            if ndpi_s is None:
                print("ndpiReader not installed (Debian libndpi-bin)")
            else:
                rate = n / ndpi_s / 1e3
                print(f"ndpiReader (nDPI 4.2)          : {rate:8.0f} k packets/s  ({ndpi_s:.2f} s)")
                print(f"ratio nDPI / tspulab           : {ours_s / ndpi_s:8.1f} x")
        fast_s = decided_path_loop(frames, args.reassembly)
        print(f"decided flows only (fast path) : {n / fast_s / 1e3:8.0f} k packets/s")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            classify_loop(frames[: len(frames) // 4], args.reassembly)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
        del frames
    curl = next(p for p in paths if p.name == "443-curl.pcap")
    hello = next(f for f in read_capture(curl) if decode(f[2], f[1]).payload[:1] == b"\x16")
    mem = memory_per_100k_flows(hello, args.reassembly)
    print(f"memory per 100 k decided flows : {mem / 2**20:8.1f} MiB ({mem / 1e5:.0f} B/flow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
