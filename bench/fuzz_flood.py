"""A flood of new flows into the DPI core: does the flow table stay bounded, and at what cost?

Usage: python bench/fuzz_flood.py [--past 500] [--seed 1] [--profile tspu-2022] [--max-flows N]

For each reassembly mode, a fresh ``TspuEngine`` gets new flows (the frames bench/fuzz_core.py
generates: random ports and flags, a third with payload; every source address new) within one
second of scenario time, so no idle expiry helps, until its flow table is full, then ``--past``
more. Printed per mode: frames sent, flows held against the table's limit, flows evicted, the
resident memory the flood added, and the cost of one new flow once the table was full. The limit
and the eviction are tspulab/dpi/flow.py's; this only measures them. (Resident memory freed by one
mode is reused by the next, so only the first mode's figure is the table's full cost.)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_core import MODES, generate, rss_mib, with_mode

from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.flow import DEFAULT_MAX_FLOWS
from tspulab.dpi.profile import load_profile
from tspulab.dpi.registry import Registry


@dataclass
class Flood:
    mode: str
    flows: int
    held: int
    evicted: int
    max_flows: int
    seconds: float
    mib: float
    """Resident memory added by the flood."""
    full_s: float = 0.0
    """Seconds per new flow once the table was full (0: it never filled)."""


def _unique_source(frame: bytes, n: int) -> bytes:
    """The generated Ethernet frame with source address n (IPv4: 10.0.0.0 + n; IPv6: its last 32
    bits n), so every frame of a flood is a new flow."""
    data = bytearray(frame)
    if data[12:14] == b"\x08\x00":
        data[26:30] = ((10 << 24) | n).to_bytes(4, "big")
    else:
        data[34:38] = n.to_bytes(4, "big")
    return bytes(data)


def flood(
    past: int, seed: int = 1, profile: str = "tspu-2022", max_flows: int | None = None
) -> Iterator[Flood]:
    """New flows (random ports and flags, a third with payload, every source address new) within
    one second of scenario time into a fresh engine per reassembly mode, so no idle expiry helps,
    until the flow table is full and then `past` more: what the table holds after (its limit and
    eviction are tspulab/dpi/flow.py's), the flows it evicted, the memory it took and the cost of
    a new flow once it was full. `max_flows` sets a smaller table limit (tests, short runs)."""
    rng = random.Random(seed)
    for mode in MODES:
        engine = TspuEngine(with_mode(load_profile(profile), mode), Registry(), ())
        table = engine.table
        if max_flows is not None:
            table.max_flows = max_flows
        limit = getattr(table, "max_flows", DEFAULT_MAX_FLOWS)
        before = rss_mib()
        began = time.perf_counter()
        n, full_at, full_t = 0, 0, 0.0
        while not full_at or n < full_at + past:
            frame = _unique_source(generate(rng, flood=True)[1], n)
            engine.process(frame, 1_000_000.0 + n * 1e-6)
            n += 1
            if not full_at and len(table) >= limit:
                full_at, full_t = n, time.perf_counter()
        ended = time.perf_counter()
        yield Flood(
            mode,
            n,
            len(table),
            getattr(table, "evicted", 0),
            limit,
            ended - began,
            rss_mib() - before,
            (ended - full_t) / past if past else 0.0,
        )
        del engine, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--past", type=int, default=500, help="new flows once the table is full")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="tspu-2022")
    parser.add_argument("--max-flows", type=int, help="a smaller flow table limit than the default")
    args = parser.parse_args()
    print(f"new flows until the table is full, then {args.past} more ({args.profile})")
    for f in flood(args.past, args.seed, args.profile, args.max_flows):
        print(
            f"  {f.mode:12s} {f.flows} frames: flows held {f.held} (limit {f.max_flows}), "
            f"evicted {f.evicted}, +{f.mib:.0f} MiB resident, {f.flows / f.seconds:,.0f}/s"
            + (f"; {f.full_s * 1e3:.1f} ms per new flow once full" if f.full_s else ""),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
