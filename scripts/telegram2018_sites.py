#!/usr/bin/env python3
"""Generate the population of small sites of scenarios/telegram-2018.yaml (data/telegram-2018/).

The April 2018 accounts name, besides Viber, Odnoklassniki, Xbox, Evernote and Steemit, "about 60
local businesses" whose sites went dark because they were hosted in the clouds Roskomnadzor
blocked (docs/tspu-behaviour.md §5.1, §8). Which businesses is not recorded, so the scenario
probes a *population*: N small sites placed at random addresses of the hosting clouds of the time,
in proportion to each cloud's address space; whether a site breaks is then up to the registry
and the lab, and the report gives k of N broken with a Wilson interval.

    python scripts/telegram2018_sites.py          # write the CSV and the scenario's generated block
    python scripts/telegram2018_sites.py --check  # exit 1 if either is not what this would write

Assumptions (also written into the CSV header and the scenario's `populations:` entry):

1. A small site is equally likely to sit at any IPv4 address of the hosting clouds below (so a
   cloud's share of sites is its share of addresses). Market share by site count is not sourced.
2. The clouds of 2018 and their ranges: AWS EC2 from AWS's ip-ranges.json of 2018-04-05 (sourced,
   data/aws-ip-ranges/); Google Cloud: the blocks the 2018 registry itself lists as Google Cloud
   (decision 4082-15: 35.184.0.0/13, 35.192.0.0/12, 35.208.0.0/12, 35.224.0.0/12) and three older
   GCP blocks it names single addresses of (104.196.0.0/14, 130.211.0.0/16, 146.148.0.0/17);
   DigitalOcean: the 2026 list (data/cloud-ranges/lord-alfred-ipranges/, CC0) as a stand-in for
   2018, which overstates it; Hetzner: its RIPE allocations of the time listed below (no file is
   shipped). Azure, OVH and Russian hosting are left out: no 2018 ranges are shipped.
3. A site in a blocked cloud uses one address (no CDN, no second provider).
4. The seed is fixed (SEED), so the population is the same on every run.
"""

from __future__ import annotations

import argparse
import csv
import io
import ipaddress
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
CSV_PATH = DATA / "telegram-2018" / "small_sites_2018.csv"
SCENARIO = ROOT / "scenarios" / "telegram-2018.yaml"
STAGES = sorted((DATA / "telegram-2018").glob("stage*.txt"))
SEED = 2018_04_16
SITES = 60
POPULATION = "small-sites"
BEGIN_CLOUDS, END_CLOUDS = "  # BEGIN generated clouds", "  # END generated clouds"
BEGIN_SERVICES, END_SERVICES = "  # BEGIN generated sites", "  # END generated sites"

GCP_2018 = [
    "35.184.0.0/13", "35.192.0.0/12", "35.208.0.0/12", "35.224.0.0/12",
    "104.196.0.0/14", "130.211.0.0/16", "146.148.0.0/17",
]  # fmt: skip
# Hetzner Online's RIPE allocations in use in 2018 (assumed; the AGPL list is not shipped).
HETZNER_2018 = [
    "5.9.0.0/16", "46.4.0.0/16", "78.46.0.0/15", "88.198.0.0/16", "88.99.0.0/16",
    "136.243.0.0/16", "138.201.0.0/16", "144.76.0.0/16", "148.251.0.0/16", "176.9.0.0/16",
    "178.63.0.0/16", "213.239.192.0/18",
]  # fmt: skip

Net = ipaddress.IPv4Network


def _nets(lines: list[str]) -> list[Net]:
    out = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text and ":" not in text:
            out.append(ipaddress.IPv4Network(text, strict=False))
    return list(ipaddress.collapse_addresses(out))


def clouds() -> dict[str, list[Net]]:
    """Provider -> its IPv4 ranges of 2018 (see the assumptions above)."""
    aws = json.loads((DATA / "aws-ip-ranges" / "ip-ranges_2018-04-05.json").read_text())
    do_file = DATA / "cloud-ranges" / "lord-alfred-ipranges" / "digitalocean" / "ipv4_merged.txt"
    return {
        "aws": _nets([p["ip_prefix"] for p in aws["prefixes"] if p["service"] == "EC2"]),
        "gcp": _nets(GCP_2018),
        "digitalocean": _nets(do_file.read_text().splitlines()),
        "hetzner": _nets(HETZNER_2018),
    }


def registry_at_peak() -> list[Net]:
    lines: list[str] = []
    for stage in STAGES:
        lines += stage.read_text().splitlines()
    return _nets(lines)


def _blocked(address: ipaddress.IPv4Address, registry: list[Net]) -> bool:
    return any(address in n for n in registry)


def generate() -> list[dict[str, str]]:
    """The sites: name, provider, the provider range holding it, address, blocked at the peak."""
    rng = random.Random(SEED)
    ranges = clouds()
    registry = registry_at_peak()
    flat = [(provider, n) for provider, nets in ranges.items() for n in nets]
    weights = [n.num_addresses for _, n in flat]
    taken: set[ipaddress.IPv4Address] = set()
    sites = []
    while len(sites) < SITES:
        provider, net = rng.choices(flat, weights)[0]
        # Not the network's first or last 256 addresses: a /24 of its own never straddles it.
        offset = rng.randrange(256, max(257, net.num_addresses - 256))
        address = net.network_address + offset
        if address in taken:
            continue
        taken.add(address)
        n = len(sites) + 1
        sites.append(
            {
                "name": f"site-{n:02d}",
                "domain": f"site-{n:02d}.smallbiz.example",
                "provider": provider,
                "provider_range": str(net),
                "address": str(address),
                "blocked_at_peak": "yes" if _blocked(address, registry) else "no",
            }
        )
    return sites


def csv_text(sites: list[dict[str, str]]) -> str:
    out = io.StringIO()
    out.write(
        "# Population of small sites for scenarios/telegram-2018.yaml, written by\n"
        f"# scripts/telegram2018_sites.py (seed {SEED}): the assumptions are in its docstring.\n"
        "# blocked_at_peak: inside the union of data/telegram-2018/stage*.txt"
        " (14.64 M addresses).\n"
    )
    writer = csv.DictWriter(out, fieldnames=list(sites[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sites)
    return out.getvalue()


def _hand_clouds(text: str) -> dict[str, list[Net]]:
    """The scenario's own clouds (outside the generated block): a site in one of their
    prefixes belongs to that cloud (clouds may not overlap)."""
    from ruamel.yaml import YAML

    head = text.split(BEGIN_CLOUDS)[0] + text.split(END_CLOUDS)[1].split(BEGIN_SERVICES)[0]
    data = YAML(typ="safe").load(head.split("\nservices:")[0])
    return {c["name"]: [Net(p) for p in c["prefixes"]] for c in data.get("clouds") or []}


def blocks(text: str, sites: list[dict[str, str]]) -> tuple[str, str]:
    """The YAML of the generated clouds and of the generated services."""
    hand = _hand_clouds(text)
    home: dict[str, str] = {}
    extra: dict[str, list[Net]] = {}
    for site in sites:
        address = ipaddress.IPv4Address(site["address"])
        owner = next((c for c, nets in hand.items() if any(address in n for n in nets)), None)
        if owner is None:
            owner = f"sites-{site['provider']}"
            net = Net(site["provider_range"])
            # The provider's range, unless it overlaps a hand-written cloud: then the site's /24.
            if any(net.overlaps(n) for nets in hand.values() for n in nets):
                net = Net(f"{address}/24", strict=False)
            extra.setdefault(owner, []).append(net)
        home[site["name"]] = owner
    cloud_lines = []
    for name, nets in sorted(extra.items()):
        listed = ", ".join(map(str, ipaddress.collapse_addresses(nets)))
        cloud_lines.append(f"  - name: {name}\n    prefixes: [{listed}]")
    service_lines = [
        f"  - {{name: {s['name']}, role: innocent, domains: [{s['domain']}], "
        f"cloud: {home[s['name']]}, address: {s['address']}, population: {POPULATION}}}"
        for s in sites
    ]
    return "\n".join(cloud_lines), "\n".join(service_lines)


def _splice(text: str, begin: str, end: str, body: str) -> str:
    head, rest = text.split(begin + "\n", 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def scenario_text(text: str, sites: list[dict[str, str]]) -> str:
    cloud_yaml, service_yaml = blocks(text, sites)
    text = _splice(text, BEGIN_CLOUDS, END_CLOUDS, cloud_yaml)
    return _splice(text, BEGIN_SERVICES, END_SERVICES, service_yaml)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    sites = generate()
    want_csv = csv_text(sites)
    old_scenario = SCENARIO.read_text()
    want_scenario = scenario_text(old_scenario, sites)
    if args.check:
        stale = [
            str(p.relative_to(ROOT))
            for p, want in ((CSV_PATH, want_csv), (SCENARIO, want_scenario))
            if not p.exists() or p.read_text() != want
        ]
        if stale:
            print(f"not current: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    CSV_PATH.write_text(want_csv)
    SCENARIO.write_text(want_scenario)
    blocked = sum(s["blocked_at_peak"] == "yes" for s in sites)
    by = {p: sum(s["provider"] == p for s in sites) for p in clouds()}
    print(f"{len(sites)} sites ({by}); {blocked} inside the 2018 registry at its peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
