"""Registry at Roskomnadzor scale: load time, lookup rates, memory, and the alternatives measured.

Run: ``.venv/bin/python bench/registry_scale.py`` (reads the shipped data/, or $TSPULAB_DATA_DIR).

Goals (issue 5): the four Telegram 2018 stages plus the 2026 Re-filter lists load in <= 3 s, >= 1 M
address lookups/s, >= 300 k SNI lookups/s, <= 500 MB RSS. Then the two full dumps are loaded and
their counts printed next to the ones stated in data/README.md. numpy and a regex alternation are
measured as alternatives only; numpy is skipped when it is not installed.
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
import ipaddress
import random
import re
import resource
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path

import ahocorasick

from tspulab.dpi.registry import (
    MatchKind,
    Registry,
    aggregate,
    diff,
    load_list,
    load_rkn_dump,
)
from tspulab.scenario.paths import data_dir

DATA = data_dir()
STAGES = sorted((DATA / "telegram-2018").glob("stage*.txt"))
REFILTER = DATA / "rkn-registry" / "refilter-2026-07"
DUMPS = {
    "2016-06-13 (complete)": (
        "z-i_dump_2016-06-13.cp1251.csv.gz",
        {"complete rows": 30_662, "IPs": 19_270, "CIDRs": 0, "domains": 18_282},
    ),
    "2018-05-05 (partial)": (
        "z-i_dump_2018-05-05_partial.cp1251.csv.gz",
        {
            "complete rows": 32_796,
            "IPs": 36_430,
            "CIDRs": 74,
            "CIDR addresses": 14_658_304,
            "domains": 28_016,
        },
    ),
}
LOOKUPS = 400_000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rate(func: Callable[[], object], count: int) -> float:
    """Calls per second of ``func`` (which itself performs ``count`` lookups)."""
    gc.collect()
    start = time.perf_counter()
    func()
    return count / (time.perf_counter() - start)


def show(label: str, value: str) -> None:
    print(f"  {label:<58} {value}")


def load_scale_registry() -> tuple[Registry, float]:
    start = time.perf_counter()
    reg = Registry()
    for stage in STAGES:
        reg.merge(load_list(stage))
    for name in ("domains_all.lst", "community.lst", "ooni_domains.lst"):
        # ooni_domains.lst has 12 lines with ports (host:port): warnings, not a stop.
        reg.merge(load_list(REFILTER / name, domain_kind=MatchKind.SUBTREE, strict=False))
    reg.merge(load_list(REFILTER / "ipsum.lst"))
    reg.contains_address("0.0.0.0")  # build the indexes: part of being ready
    reg.match_domain("example.org")
    return reg, time.perf_counter() - start


def address_probes(reg: Registry, count: int) -> list[bytes]:
    """Half inside listed prefixes, half uniformly random (mostly misses)."""
    rnd = random.Random(5)
    prefixes = reg.aggregated_prefixes(4)
    probes = []
    for i in range(count):
        if i % 2:
            net = rnd.choice(prefixes)
            value = int(net.network_address) + rnd.randrange(net.num_addresses)
        else:
            value = rnd.getrandbits(32)
        probes.append(value.to_bytes(4, "big"))
    return probes


def bench_addresses(reg: Registry) -> None:
    print("\nAddress lookups (IPv4, 50% drawn from listed prefixes, 50% random)")
    probes = address_probes(reg, LOOKUPS)
    hits = sum(reg.contains_address(p) is not None for p in probes)
    show("hit ratio", f"{hits / LOOKUPS:.1%}")
    contains = reg.contains_address

    def run_bytes() -> None:
        for p in probes:
            contains(p)

    ints = [int.from_bytes(p) for p in probes]
    strs = [str(ipaddress.IPv4Address(p)) for p in probes]
    objs = [ipaddress.IPv4Address(p) for p in probes]
    show(
        "contains_address(packed bytes)  [chosen: bisect on ints]",
        f"{rate(run_bytes, LOOKUPS) / 1e6:.2f} M/s",
    )
    show(
        "contains_address(int)",
        f"{rate(lambda: [contains(v) for v in ints], LOOKUPS) / 1e6:.2f} M/s",
    )
    show(
        "contains_address(str)",
        f"{rate(lambda: [contains(s) for s in strs], LOOKUPS) / 1e6:.2f} M/s",
    )
    show(
        "contains_address(IPv4Address)",
        f"{rate(lambda: [contains(o) for o in objs], LOOKUPS) / 1e6:.2f} M/s",
    )

    # Alternatives over the same exact set.
    intervals = reg.aggregated_intervals(4)
    starts = [s for s, _ in intervals]
    ends = [e for _, e in intervals]

    def bare_bisect() -> None:
        for v in ints:
            i = bisect_right(starts, v) - 1
            _ = i >= 0 and v <= ends[i]

    show(
        "alt: bare bisect, no entry returned (floor of the method)",
        f"{rate(bare_bisect, LOOKUPS) / 1e6:.2f} M/s",
    )

    by_length: dict[int, set[int]] = {}
    for net in reg.aggregated_prefixes(4):
        by_length.setdefault(net.prefixlen, set()).add(
            int(net.network_address) >> (32 - net.prefixlen)
        )
    lengths = sorted(by_length, reverse=True)
    tables = [(32 - n, by_length[n]) for n in lengths]

    def per_length_hash() -> None:
        for v in ints:
            for shift, table in tables:
                if v >> shift in table:
                    break

    show(
        f"alt: one hash set per prefix length ({len(lengths)} lengths)",
        f"{rate(per_length_hash, LOOKUPS) / 1e6:.2f} M/s",
    )
    try:
        import numpy as np
    except ImportError:
        show("alt: numpy", "not installed, skipped")
        return
    np_starts = np.array(starts, dtype=np.uint32)
    np_ends = np.array(ends, dtype=np.uint32)

    def numpy_scalar() -> None:
        for v in ints[: LOOKUPS // 8]:
            i = int(np.searchsorted(np_starts, v, side="right")) - 1
            _ = i >= 0 and v <= np_ends[i]

    batch = np.array(ints, dtype=np.uint32)

    def numpy_batch() -> None:
        idx = np.searchsorted(np_starts, batch, side="right") - 1
        _ = (idx >= 0) & (batch <= np_ends[np.maximum(idx, 0)])

    show(
        "alt: numpy.searchsorted, one address per call",
        f"{rate(numpy_scalar, LOOKUPS // 8) / 1e6:.2f} M/s",
    )
    show(
        "alt: numpy.searchsorted, whole batch (not usable per packet)",
        f"{rate(numpy_batch, LOOKUPS) / 1e6:.2f} M/s",
    )


def bench_domains(reg: Registry, domains: Sequence[str]) -> None:
    print("\nSNI lookups (86 k subtree rules; 50% hits as www.<rule>, 50% misses)")
    rnd = random.Random(7)
    names = []
    for i in range(LOOKUPS):
        base = rnd.choice(domains)
        names.append(f"www.{base}" if i % 2 else f"{base[:3]}x{base[3:]}.example")
    hits = sum(reg.match_domain(n) is not None for n in names)
    show("hit ratio", f"{hits / LOOKUPS:.1%}")
    upper = [n.upper() + "." for n in names]
    show(
        "match_domain (fold case, strip dot)",
        f"{rate(lambda: [reg.match_domain(n) for n in upper], LOOKUPS) / 1e3:.0f} k/s",
    )
    show(
        "match_domain_raw (as given)",
        f"{rate(lambda: [reg.match_domain_raw(n) for n in names], LOOKUPS) / 1e3:.0f} k/s",
    )
    sni = [n.encode() for n in names]
    show(
        "match_domain(bytes from the ClientHello)",
        f"{rate(lambda: [reg.match_domain(n) for n in sni], LOOKUPS) / 1e3:.0f} k/s",
    )

    print("\nSubstring rules (*t.co*-style): engines side by side, same 20 k names")
    sample = names[:20_000]
    for count in (1, 8, 100, 1_000, 10_000):
        patterns = ["t.co", *rnd.sample(list(domains), count - 1)]
        sub = Registry()
        for p in patterns:
            sub.add_domain(p, MatchKind.SUBSTRING, "bench")
        regex = re.compile("|".join(map(re.escape, sorted(patterns, key=len, reverse=True))))
        automaton = ahocorasick.Automaton()
        for p in patterns:
            automaton.add_word(p, p)
        automaton.make_automaton()
        engines: dict[str, Callable[[str], object]] = {
            "registry": sub.match_domain_raw,
            "loop": lambda n, ps=patterns: next((p for p in ps if p in n), None),
            "regex": regex.search,
            "aho-corasick": lambda n, a=automaton: next(a.iter(n), None),
        }
        if count > 1_000:
            del engines["loop"]  # minutes at 10 k patterns
        figures = [
            f"{name} {rate(lambda f=f: [f(n) for n in sample], len(sample)) / 1e3:,.0f} k/s"
            for name, f in engines.items()
        ]
        show(f"{count:>6} patterns", ", ".join(figures))


def bench_aggregation(reg: Registry) -> None:
    print("\nAggregation: sorted integer intervals (chosen) vs ipaddress.collapse_addresses")
    rnd = random.Random(11)
    synthetic = []
    for _ in range(200_000):
        length = rnd.choice((32, 32, 32, 32, 31, 30, 29, 28, 24, 22, 20, 16))
        value = rnd.getrandbits(32) >> (32 - length) << (32 - length)
        synthetic.append(ipaddress.IPv4Network((value, length)))
    union = [e.network for e in reg.address_entries()]
    for label, networks in (
        ("Telegram stages + ipsum.lst", union),
        ("200 k random prefixes", synthetic),
    ):
        start = time.perf_counter()
        ours = aggregate(networks)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        theirs = list(ipaddress.collapse_addresses(networks))
        t_theirs = time.perf_counter() - start
        assert ours == theirs, "the two aggregations must agree"
        show(
            f"{label}: {len(networks):,} -> {len(ours):,} prefixes",
            f"intervals {t_ours * 1e3:,.0f} ms, collapse_addresses {t_theirs * 1e3:,.0f} ms",
        )


def bench_telegram_diffs() -> None:
    print("\nTelegram 2018 stages, cumulative: addresses, flow rules, diff size")
    old = Registry()
    for stage in STAGES:
        new = Registry().merge(old).merge(load_list(stage))
        start = time.perf_counter()
        d = diff(old, new)
        elapsed = time.perf_counter() - start
        assert d.apply(old.aggregated_prefixes()) == new.aggregated_prefixes()
        show(
            stage.name[:40],
            f"{new.address_count(4):>11,} addr, {new.prefix_count(4):>5,} rules, "
            f"+{len(d.add_prefixes):,}/-{len(d.remove_prefixes):,} rules in {elapsed * 1e3:.0f} ms",
        )
        old = new


def dump_domain_spellings(path: Path) -> set[str]:
    """Distinct non-empty domain fields of the complete rows, as written (README's count)."""
    text = gzip.decompress(path.read_bytes()).decode("cp1251")
    rows = csv.reader(io.StringIO(text), delimiter=";")
    next(rows)
    return {row[1].strip() for row in rows if len(row) >= 6 and row[1].strip()}


def dump_counts() -> None:
    print("\nFull dumps: counts here vs data/README.md")
    for label, (name, stated) in DUMPS.items():
        path = DATA / "rkn-registry" / name
        start = time.perf_counter()
        reg = load_rkn_dump(path)
        elapsed = time.perf_counter() - start
        stats = reg.sources[0]
        singles = {e.first for e in reg.address_entries(4) if e.prefixlen == 32}
        cidrs = Registry()
        for e in reg.address_entries(4):
            if e.prefixlen < 32:
                cidrs.add_network(e.network, e.source)
        raw_domains = dump_domain_spellings(path)
        ours = {
            "rows": stats.rows,
            "complete rows": stats.rows - sum("cut off" in w.message for w in reg.warnings),
            "IPs": len(singles),
            "CIDRs": stats.prefixes,
            "CIDR addresses": cidrs.address_count(4),
            "CIDR addresses, summed per entry": sum(
                e.last - e.first + 1 for e in cidrs.address_entries()
            ),
            "addresses covered (union)": reg.address_count(4),
            "flow rules (aggregated prefixes)": reg.prefix_count(4),
            "domains": len(raw_domains),
            "domain rules (IDN and trailing-dot spellings folded)": reg.domain_count(),
            "domain rows": stats.domains,
        }
        print(f"  {label}: loaded in {elapsed:.2f} s, {len(reg.warnings)} warning(s)")
        for warning in reg.warnings:
            print(f"    warning: {str(warning)[:140]}")
        for key, value in ours.items():
            note = f"   (README: {stated[key]:,})" if key in stated else ""
            show(f"  {key}", f"{value:>12,}{note}")


def main() -> int:
    if not STAGES or not REFILTER.exists():
        print(f"reference data not found under {DATA} (set TSPULAB_DATA_DIR)", file=sys.stderr)
        return 2
    print(f"Python {sys.version.split()[0]}, data {DATA}")
    base_rss = rss_mb()
    reg, seconds = load_scale_registry()
    print(
        "\nLoad: Telegram 2018 stages 0-3 + Re-filter 2026-07 (domains_all, community, ooni, ipsum)"
    )
    show("load + index build  [goal <= 3 s]", f"{seconds:.2f} s")
    show(
        "address entries / aggregated IPv4 prefixes",
        f"{reg.entry_count():,} / {reg.prefix_count(4):,}",
    )
    show("IPv4 addresses covered (exact union)", f"{reg.address_count(4):,}")
    show("domain rules", f"{reg.domain_count():,}")
    show("warnings (bad lines skipped)", f"{len(reg.warnings)}")
    show(
        "peak RSS after load  [goal <= 500 MB]",
        f"{rss_mb():.0f} MB (interpreter + imports {base_rss:.0f} MB)",
    )
    bench_addresses(reg)
    domains = [r.name for r in reg.domain_rules(MatchKind.SUBTREE)]
    bench_domains(reg, domains)
    bench_aggregation(reg)
    bench_telegram_diffs()
    dump_counts()
    print(f"\npeak RSS of the whole run (incl. the 200 k synthetic networks): {rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
