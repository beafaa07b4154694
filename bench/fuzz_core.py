"""Fuzz the DPI core: generated and mutated frames through ``TspuEngine.process``, every profile
in every reassembly mode; prints packets tried, exceptions (the goal is 0), peak memory and flows.

Usage: python bench/fuzz_core.py [--packets 1000000] [--seed 1] [--profile NAME] [--out DIR]

Inputs:
- Seeds are the frames of the shipped nDPI captures (tests/data/pcaps/ndpi/pcap, every link
  type they use). A registry and every set of every profile are filled with the SNIs, Hosts and
  server addresses the captures show, so the blocking paths (reset, drop-after, police, freeze,
  random loss, host blocks) run, not only "allow".
- Each packet is one of: a seed frame replayed in its flow's order (so multi-packet state, TCP
  reassembly and the TLS-record modes see whole handshakes), a mutated seed (bit flips,
  interesting bytes, insertions, deletions, truncation, splicing of two frames, with IP/UDP
  lengths fixed up most of the time so the mutation reaches the payload parsers), or a frame
  generated from scratch (Ethernet or raw IP, IPv4 or IPv6, TCP or UDP to the ports the
  classifiers look at, payloads that start like TLS, QUIC, HTTP, SOCKS or nothing). One frame in
  50 is read as another link type; the arriving side is given as the live controller gives it
  (subscriber side, upstream side) or not at all, as in a replay.
- Time advances a few ms per packet, with jumps past idle timeouts and, rarely, 5 s back (capture
  clocks step); every 16th batch is a flood of new flows (random source ports).
- Whether the flow table stays bounded under a flood of new flows is bench/fuzz_flood.py's.

All engines (profiles x modes) are fed in interleaved batches, so a slow one cannot hide behind a
fast one. An exception is counted by (type, innermost tspulab frame); the first input of each is
written under --out with the batch of its engine that led to it (time, link type, frame in hex,
one a line), from which a minimal regression test is made by hand. The run is deterministic for a
given --seed.

bench/fuzz_core_compare.py runs this mutator and atheris (coverage-guided) for the same time
under a line tracer: the figures behind the choice of this mutator are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import re
import resource
import struct
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tspulab.dpi.engine import TspuEngine  # noqa: E402
from tspulab.dpi.packet import LINKTYPE_ETHERNET, LINKTYPE_RAW, decode  # noqa: E402
from tspulab.dpi.pcap import read_capture  # noqa: E402
from tspulab.dpi.policy import text  # noqa: E402
from tspulab.dpi.profile import Profile, load_profile, profile_names  # noqa: E402
from tspulab.dpi.registry import Registry  # noqa: E402

CAPTURES = ROOT / "tests" / "data" / "pcaps" / "ndpi" / "pcap"
MODES = ("none", "tcp", "tls-records")
SUBSCRIBER_NETS = tuple(ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
BATCH = 64
LINKTYPES = (0, 1, 9, 12, 50, 51, 101, 113, 228, 229, 276, 147, 65535)
"""The link types decode() reads (packet.py), and two it does not."""
_DOMAIN = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z][a-z0-9-]{0,62}")
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x16, 0x03, 0x01, 0xC0, 0x40, 0xFE)
PORTS = (443, 80, 53, 1194, 51820, 8443, 22, 9001, 3478, 4433, 1080, 5060)
PAYLOAD_HEADS = (
    b"",
    b"\x16\x03\x01",
    b"\x16\x03\x03\x00\x05\x01\x00\x00\x01",
    b"\xc3\x00\x00\x00\x01\x08",
    b"\xcf\xff\x00\x00\x1d",
    b"GET / HTTP/1.1\r\nHost: ",
    b"\x05\x01\x00",
    b"\x38\x01\x00\x00\x00\x00\x00\x00\x00",
    b"SSH-2.0-",
    b"\x01\x00\x00\x00",
)


@dataclass(frozen=True)
class Seed:
    linktype: int
    frame: bytes
    payload_at: int
    """Offset of the L4 payload in the frame (where mutations matter most)."""


@dataclass
class Target:
    profile: str
    mode: str
    engine: TspuEngine
    packets: int = 0


@dataclass
class Report:
    packets: int = 0
    undecodable: int = 0
    detections: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    """Verdict actions and packet fates seen (that the blocking paths ran, not only allow)."""
    first_inputs: dict[str, tuple[str, str, list[tuple[float, int, bytes]]]] = field(
        default_factory=dict
    )
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    rss_mib: list[float] = field(default_factory=list)
    """Resident memory at each quarter of the run (a plateau = bounded)."""
    flows_held: int = 0
    """The most flows one engine's table held at any sample."""
    flows_created: int = 0
    evicted: int = 0
    """Flows the tables evicted because they were full."""
    engines: int = 0


# --- seeds, registry, engines -----------------------------------------------------------------


def load_seeds(captures: Path = CAPTURES) -> list[Seed]:
    seeds: list[Seed] = []
    for path in sorted(captures.glob("*.pcap*")):
        try:
            for _, linktype, frame in read_capture(path):
                try:
                    pkt = decode(frame, linktype)
                except Exception:
                    seeds.append(Seed(linktype, frame, 0))
                    continue
                seeds.append(Seed(linktype, frame, max(0, len(frame) - len(pkt.payload))))
        except Exception as err:  # a capture this reader refuses is not a seed
            print(f"skipped {path.name}: {err}", file=sys.stderr)
    return seeds


def seed_registry(seeds: list[Seed]) -> tuple[Registry, list[str]]:
    """Every 4th SNI/Host and every 3rd server address the captures show, as a registry; all
    the names (the sets of the profiles get the others)."""
    probe = TspuEngine(load_profile("tspu-2022"), Registry(), SUBSCRIBER_NETS)
    names: set[str] = set()
    servers: set[str] = set()
    for n, seed in enumerate(seeds):
        try:
            decision = probe.process(seed.frame, n * 0.001, linktype=seed.linktype)
        except Exception:
            continue
        c = decision.classification
        for name in (c.sni, c.host) if c is not None else ():
            if name and _DOMAIN.fullmatch(name.lower().rstrip(".")):
                names.add(name.lower().rstrip("."))
        if decision.flow is not None and decision.flow.server_port in (80, 443):
            servers.add(text(decision.flow.server_addr))
    registry = Registry()
    chosen = sorted(names)
    for name in chosen[::4]:
        with contextlib.suppress(ValueError):
            registry.add(name)
    for addr in sorted(servers)[::3]:
        with contextlib.suppress(ValueError):
            registry.add_address(addr)
    return registry, chosen


def with_mode(profile: Profile, mode: str) -> Profile:
    spec = profile.spec
    reassembly = spec.inspection.reassembly.model_copy(update={"value": mode})
    inspection = spec.inspection.model_copy(update={"reassembly": reassembly})
    return dataclasses.replace(profile, spec=spec.model_copy(update={"inspection": inspection}))


def make_targets(registry: Registry, names: list[str], only: str | None = None) -> list[Target]:
    targets: list[Target] = []
    for name in profile_names():
        if only and name != only:
            continue
        base = load_profile(name)
        for j, set_name in enumerate(base.sets):
            # Each set its own names (registry: every 4th), so each rule gets flows to judge; an
            # address-only set refuses names and keeps its own entries.
            with contextlib.suppress(ValueError):
                base = base.with_set_entries(set_name, names[1 + j % 3 :: 4])
        for k, mode in enumerate(MODES):
            profile = with_mode(base, mode)
            # No subscriber nets: every client counts as inside (inside-only rules judge every
            # flow); with them, flows from outside take the other paths.
            nets = SUBSCRIBER_NETS if (len(targets) + k) % 2 else ()
            targets.append(Target(name, mode, TspuEngine(profile, registry, nets)))
    return targets


# --- packets ------------------------------------------------------------------------------------


def fix_lengths(frame: bytearray, linktype: int) -> None:
    """Make IPv4 total length / IPv6 payload length and the UDP length agree with the frame."""
    at = 14 if linktype == LINKTYPE_ETHERNET else 0
    if linktype == LINKTYPE_ETHERNET and frame[12:14] not in (b"\x08\x00", b"\x86\xdd"):
        return
    if len(frame) < at + 40:
        return
    if frame[at] >> 4 == 4:
        ihl = (frame[at] & 0xF) * 4
        struct.pack_into("!H", frame, at + 2, min(0xFFFF, len(frame) - at))
        proto, l4 = frame[at + 9], at + ihl
    elif frame[at] >> 4 == 6:
        struct.pack_into("!H", frame, at + 4, min(0xFFFF, len(frame) - at - 40))
        proto, l4 = frame[at + 6], at + 40
    else:
        return
    if proto == 17 and len(frame) >= l4 + 8:
        struct.pack_into("!H", frame, l4 + 4, min(0xFFFF, len(frame) - l4))


def mutate(rng: random.Random, seed: Seed, other: Seed) -> tuple[int, bytes]:
    data = bytearray(seed.frame)
    start = seed.payload_at if rng.random() < 0.7 and seed.payload_at < len(data) else 0
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        if not data:
            break
        at = rng.randrange(start, len(data)) if start < len(data) else rng.randrange(len(data))
        op = rng.randrange(8)
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at] = rng.choice(INTERESTING)
        elif op == 2:
            data[at:at] = rng.randbytes(rng.choice((1, 2, 4, 16, 200)))
        elif op == 3:
            del data[at : at + rng.choice((1, 2, 4, 16, 200))]
        elif op == 4:
            del data[at:]
        elif op == 5:
            cut = rng.randrange(len(other.frame) + 1)
            data[at:] = other.frame[cut:]
        elif op == 6 and at + 2 <= len(data):
            struct.pack_into("!H", data, at, rng.choice((0, 1, 0x7FFF, 0xFFFF, len(data))))
        else:
            chunk = data[at : at + rng.choice((4, 32, 300))]
            data[at:at] = chunk * rng.choice((1, 2, 10))
    if rng.random() < 0.8:
        fix_lengths(data, seed.linktype)
    return seed.linktype, bytes(data)


def generate(rng: random.Random, flood: bool = False) -> tuple[int, bytes]:
    v6 = rng.random() < 0.25
    udp = rng.random() < 0.4
    sport = rng.randrange(1024, 65536)
    dport = rng.choice(PORTS) if rng.random() < 0.8 else rng.randrange(65536)
    head = rng.choice(PAYLOAD_HEADS)
    payload = head + rng.randbytes(rng.choice((0, 1, 5, 40, 100, 600, 1300)))
    if udp:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        proto = 17
    else:
        flags = rng.choice((0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, rng.randrange(256)))
        seq, ack = rng.randrange(1 << 32), rng.randrange(1 << 32)
        offset = rng.choice((5, 5, 5, 8, 15, 2))
        options = rng.randbytes((offset - 5) * 4) if offset > 5 else b""
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, 65535, 0, 0)
        l4 = tcp + options + payload
        proto = 6
    if v6:
        src = bytes([0x20, 0x01, 0x0D, 0xB8]) + rng.randbytes(12)
        dst = bytes([0x2A, 0x00]) + rng.randbytes(14)
        ip = struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + src + dst
        ethertype = b"\x86\xdd"
    else:
        src = bytes([10, rng.randrange(4), rng.randrange(256), rng.randrange(256)])
        dst = rng.randbytes(4)
        frag = rng.choice((0, 0, 0, 0x4000, 0x2000, 0x2000 | rng.randrange(8192), 185))
        ip = struct.pack(
            "!BBHHHBBH", 0x45, 0, 20 + len(l4), rng.randrange(65536), frag, 64, proto, 0
        )
        ip += src + dst
        ethertype = b"\x08\x00"
    if flood or rng.random() < 0.5:
        return LINKTYPE_ETHERNET, b"\x02" * 6 + b"\x04" * 6 + ethertype + ip + l4
    return LINKTYPE_RAW, ip + l4


def packets(
    rng: random.Random, seeds: list[Seed], batch: int, flood: bool
) -> Iterator[tuple[int, bytes]]:
    """One batch: a run of seeds in capture order (whole flows), mutants and generated frames."""
    if flood:
        for _ in range(batch):
            yield generate(rng, flood=True)
        return
    start = rng.randrange(len(seeds))
    for i in range(batch):
        roll = rng.random()
        seed = seeds[(start + i) % len(seeds)]
        if roll < 0.45:
            yield seed.linktype, seed.frame
        elif roll < 0.85:
            yield mutate(rng, seed, rng.choice(seeds))
        else:
            yield generate(rng)


# --- the run ------------------------------------------------------------------------------------


def _where(err: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "tspulab" in f.filename]
    last = frames[-1] if frames else traceback.extract_tb(err.__traceback__)[-1]
    return f"{type(err).__name__} at {Path(last.filename).name}:{last.lineno} ({last.name})"


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def feed(target: Target, batch: list[tuple[float, int, bytes]], report: Report) -> None:
    engine = target.engine
    for i, (now, linktype, frame) in enumerate(batch):
        try:
            # The live controller knows the port a frame came in on; a replay does not.
            side = (None, True, False)[len(frame) % 3]
            decision = engine.process(frame, now, linktype=linktype, from_subscriber_side=side)
            if decision.flow is None:
                report.undecodable += 1
            elif decision.flow.packets == 1:
                report.flows_created += 1
            report.actions[f"{decision.verdict.action.value}/{decision.fate.value}"] += 1
            drain = getattr(engine, "drain_detections", None)
            if drain is not None and engine.detections:
                report.detections += len(drain())
        except Exception as err:
            key = _where(err)
            report.exceptions[key] += 1
            if key not in report.first_inputs:
                report.first_inputs[key] = (target.profile, target.mode, batch[: i + 1])
        target.packets += 1
        report.packets += 1


def fuzz(
    total: int,
    seed: int = 1,
    only_profile: str | None = None,
    seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run `total` packets (or until `seconds` pass) over every profile x mode; the report."""
    rng = random.Random(seed)
    seeds = load_seeds()
    registry, names = seed_registry(seeds)
    targets = make_targets(registry, names, only_profile)
    report = Report(engines=len(targets))
    now = 1_000_000.0
    began = time.perf_counter()
    quarter = max(1, total // 4)
    batches = 0
    while report.packets < total:
        if seconds is not None and time.perf_counter() - began > seconds:
            break
        flood = batches % 16 == 15
        for target in targets:
            batch = []
            for linktype, frame in packets(rng, seeds, BATCH, flood):
                roll = rng.random()
                if roll < 0.02:  # another link layer reading the same bytes
                    linktype = rng.choice(LINKTYPES)
                if roll < 0.001:
                    now += 700.0  # past every idle timeout
                elif roll < 0.002:
                    now -= 5.0  # a capture whose clock stepped back
                else:
                    now += rng.choice((0.0, 0.0001, 0.002, 0.05))
                batch.append((now, linktype, frame))
            before = report.packets
            feed(target, batch, report)
            if before // quarter != report.packets // quarter:
                report.rss_mib.append(rss_mib())
                if progress:
                    progress(
                        f"{report.packets} packets, {sum(report.exceptions.values())} exceptions"
                    )
        batches += 1
        if batches % 8 == 0:
            report.flows_held = max(report.flows_held, *(len(t.engine.table) for t in targets))
    report.seconds = time.perf_counter() - began
    report.evicted = sum(getattr(t.engine.table, "evicted", 0) for t in targets)
    report.flows_held = max(report.flows_held, *(len(t.engine.table) for t in targets))
    report.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


def save_inputs(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, (key, (profile, mode, batch)) in enumerate(report.first_inputs.items()):
        path = out / f"crash-{n}.txt"
        lines = [f"# {key}", f"# profile {profile}, reassembly {mode}; last line raised"]
        lines += [f"{now!r} {linktype} {frame.hex()}" for now, linktype, frame in batch]
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", help="only this profile (all three modes)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"))
    args = parser.parse_args()
    report = fuzz(args.packets, args.seed, args.profile, progress=lambda s: print(s, flush=True))
    rate = report.packets / report.seconds if report.seconds else 0.0
    print(f"engines (profile x reassembly mode): {report.engines}")
    print(f"packets tried: {report.packets} in {report.seconds:.1f} s ({rate:,.0f} packets/s)")
    print(f"undecodable (forwarded as not-IP): {report.undecodable}")
    print(f"detect events: {report.detections}")
    print("verdict/fate: " + ", ".join(f"{k} {v}" for k, v in sorted(report.actions.items())))
    print(f"exceptions: {sum(report.exceptions.values())}")
    for key, count in report.exceptions.most_common():
        print(f"  {count:8d}  {key}")
    print(
        f"flows created: {report.flows_created}; most held by one engine: {report.flows_held}; "
        f"evicted (table full): {report.evicted}"
    )
    print("resident MiB at each quarter: " + ", ".join(f"{m:.0f}" for m in report.rss_mib))
    print(f"peak resident MiB: {report.peak_rss_mib:.0f}")
    if report.first_inputs:
        for path in save_inputs(report, args.out):
            print(f"input written: {path}")
    return 1 if report.exceptions else 0


if __name__ == "__main__":
    sys.exit(main())
