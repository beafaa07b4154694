#!/usr/bin/env python3
"""Goodput of a throttled TLS flow in both directions against the profile's policing rate.

scenarios/twitter-2021.yaml polices flows whose ClientHello names Twitter to 130 kbit/s in each
direction (an OpenFlow meter with a drop band per direction, burst 16 KB). Downstream: curl
downloads a byte range of /bulk. Upstream: curl POSTs a body to `/`, then asks for `/` again on
the same connection (`--next`); nginx answers the POST at once but reads (discards) its body
before it can answer the second request, so the second answer marks the body's arrival. Goodput
is HTTP body bytes over the time from the end of the TLS handshake to the last byte (down) or to
the second answer (up). The two directions alternate; an unthrottled service is measured the
same way for reference, and the switch's meter counters say how much the policer dropped.
Goal (issue 6): within ±15 % of 130 kbit/s in both directions.

    sudo .venv/bin/python bench/throttle_goodput.py [--rounds 3] [--bytes 131072]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from labbench import in_lab, median, scenario, verdict

from tspulab.scenario.live import LiveLab


def curl(live: LiveLab, argv: list[str], timeout_s: float) -> list[dict[str, Any]]:
    proc = live.host("sub1").popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=timeout_s + 10)
    if proc.returncode != 0:
        raise RuntimeError(f"curl exit {proc.returncode}: {err.decode()[-300:]}")
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


def common(live: LiveLab, timeout_s: float) -> list[str]:
    return ["-sS", "-o", "/dev/null", "--max-time", f"{timeout_s:g}", "--cacert",
            str(live.ca.ca_path), "--noproxy", "*", "-w", "%{json}\\n"]  # fmt: skip


def download_kbps(live: LiveLab, domain: str, n_bytes: int, timeout_s: float) -> float:
    (info,) = curl(live, ["curl", *common(live, timeout_s), "-r", f"0-{n_bytes - 1}",
                          f"https://{domain}/bulk"], timeout_s)  # fmt: skip
    if info["size_download"] != n_bytes:
        raise RuntimeError(f"downloaded {info['size_download']} of {n_bytes} bytes")
    return n_bytes * 8 / (info["time_total"] - info["time_pretransfer"]) / 1000


def upload_kbps(live: LiveLab, domain: str, body: Path, timeout_s: float) -> float:
    post, get = curl(live, [
        "curl", *common(live, timeout_s), "-H", "Expect:", "--data-binary", f"@{body}",
        f"https://{domain}/", "--next", *common(live, timeout_s), f"https://{domain}/",
    ], timeout_s)  # fmt: skip
    if post["http_code"] != 200 or get["http_code"] != 200 or get["num_connects"] != 0:
        raise RuntimeError(f"upload not measured on one connection: {post} {get}")
    seconds = post["time_total"] - post["time_pretransfer"] + get["time_starttransfer"]
    return body.stat().st_size * 8 / seconds / 1000


def meter_drops(live: LiveLab) -> list[tuple[int, int]]:
    """(bytes into the meter, bytes its drop band dropped) for each meter of the TSPU switch."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", live.tspu_switch],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    meters = []
    for block in out.split("meter:")[1:]:
        fields = dict(f.split(":", 1) for f in block.split() if ":" in f)
        meters.append((int(fields["byte_in_count"]), int(fields.get("byte_count", "0"))))
    return meters


def measure(live: LiveLab, args: argparse.Namespace) -> dict[str, list[float]]:
    domain = {s.name: s.domains[0] for s in live.scenario.services}
    body = live.run_dir / "upload.bin"
    body.write_bytes(b"\x00" * args.bytes)
    timeout = 120.0
    out: dict[str, list[float]] = {"down": [], "up": [], "ref_down": [], "ref_up": []}
    for r in range(1, args.rounds + 1):
        out["down"].append(download_kbps(live, domain[args.service], args.bytes, timeout))
        out["up"].append(upload_kbps(live, domain[args.service], body, timeout))
        print(f"round {r}: {args.service} down {out['down'][-1]:6.1f} kbit/s, "
              f"up {out['up'][-1]:6.1f} kbit/s", flush=True)  # fmt: skip
    out["ref_down"].append(download_kbps(live, domain[args.reference], args.bytes, timeout))
    out["ref_up"].append(upload_kbps(live, domain[args.reference], body, timeout))
    drops = meter_drops(live)
    out["meter_in_bytes"] = [float(sum(m[0] for m in drops))]
    out["meter_dropped_bytes"] = [float(sum(m[1] for m in drops))]
    out["meters"] = [float(len(drops))]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="twitter-2021")
    parser.add_argument("--service", default="twitter", help="a throttled service")
    parser.add_argument("--reference", default="yandex", help="an unthrottled service")
    parser.add_argument("--rate-kbps", type=float, default=130.0, help="the profile's rate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bytes", type=int, default=131072, help="per transfer")
    args = parser.parse_args()
    base = scenario(args.scenario)
    runs_dir = Path(tempfile.mkdtemp(prefix="tspulab-bench-"))
    print(f"scenario {base.name} (profile {base.profile}), sub1 ⇄ {args.service}, "
          f"{args.rounds} × {args.bytes:,} B each way, runs in {runs_dir}")  # fmt: skip
    m = in_lab(base, runs_dir, True, lambda live: measure(live, args))
    rate = args.rate_kbps
    print(f"reference {args.reference} (not throttled): down {m['ref_down'][0]:,.0f} kbit/s, "
          f"up {m['ref_up'][0]:,.0f} kbit/s")  # fmt: skip
    print(f"meters: {m['meters'][0]:.0f}, {m['meter_dropped_bytes'][0]:,.0f} of "
          f"{m['meter_in_bytes'][0]:,.0f} bytes dropped by their bands")  # fmt: skip
    for direction in ("down", "up"):
        kbps = median(m[direction])
        off = (kbps / rate - 1) * 100
        print(f"median {direction:4s} {kbps:6.1f} kbit/s = {off:+5.1f} % of {rate:g} kbit/s "
              f"(goal ±15 %: {verdict(abs(off) <= 15)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
