"""A synthetic Telegram-2018-like campaign run directory, written as the runner would write it.

Three ISPs (Rostelecom applies registry changes at once, MTS 2 h and Beeline 6 h later; one of
Beeline's three subscribers is not behind its TSPU), six steps from the court decision to the
Google ranges, the registry growing from Telegram's own 9,472 addresses to ~15.7 M, innocent
services on AWS and Google Cloud falling one after another, a SOCKS5 proxy at Hetzner that stays
reachable and an OpenVPN server at DigitalOcean that is caught in the cloud blocking.

Run as a script to write a run directory for looking at the report:
`python -m tests.unit.test_metrics_fixture /tmp/campaign` (then render it with
tspulab.metrics.report.write_report).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from tspulab.contracts import IspMeta, RunMeta, ServiceMeta
from tspulab.metrics.timeline import build_timeline, parse_clock_start, services_from_meta
from tspulab.scenario.probes import ProbeResult

CLOCK_START = "2018-04-13T00:00:00Z"
H, D = 3600.0, 86400.0
# (label, scenario seconds, blocked addresses, aggregated prefixes, what happened)
STEPS = [
    ("start", 0.0, 0, 0, "Tagansky court decision 2-1779/2018"),
    ("telegram subnets", 3 * D, 9_472, 10, "registry_add: Telegram's own subnets"),
    ("aws+gcp first", 3 * D + 14 * H, 1_835_008, 16, "registry_add: 6 AWS/GCP ranges"),
    ("mass cloud", 4 * D, 2_500_000, 40, "registry_add: AWS eu-central-1"),
    ("almost 16 M", 4 * D + 12 * H, 14_750_000, 74, "registry_add: cloud subnets 4082-15"),
    ("google ranges", 9 * D, 15_700_000, 97, "registry_add: Google ranges"),
]
ISPS = {  # name: (update delay, subscribers, subscribers not behind the TSPU)
    "rostelecom": (0.0, 2, 0),
    "mts": (2 * H, 2, 0),
    "beeline": (6 * H, 3, 1),
}
# name, role, users, address, cloud, index of the step whose registry first covers it
SERVICES = [
    ("telegram", "target", 200, "149.154.167.99", "telegram", 1),
    ("viber", "innocent", 40, "18.197.25.40", "aws-fra", 2),
    ("evernote", "innocent", 10, "35.190.4.12", "gcp", 3),
    ("slack", "innocent", 12, "52.58.10.20", "aws-fra", 4),
    ("youtube", "innocent", 70, "173.194.73.91", "google", None),
    ("yandex", "innocent", 50, "77.88.55.60", "yandex", None),
    ("vk", "innocent", 60, "87.240.190.67", "vk", None),
]
CIRCUMVENTION = {  # name: (kind, address, index of the step whose registry covers it)
    "socks-proxy": ("socks5", "88.99.1.10", None),
    "vpn-do": ("openvpn", "104.248.40.2", 4),
}
EVERY = 12 * H
END = 11 * D
DEGRADED_STEP = 5  # youtube slowed to a crawl once the Google ranges are in


def _step_at(t: float) -> int:
    return max(i for i, s in enumerate(STEPS) if s[1] <= t)


def _effective_step(t: float, delay: float) -> int:
    return max(i for i, s in enumerate(STEPS) if i == 0 or s[1] + delay <= t)


def _iso(t: float) -> str:
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(CLOCK_START.replace("Z", "+00:00"))
    return (start + timedelta(seconds=t)).isoformat().replace("+00:00", "Z")


def _probe(rng: random.Random, **kw: Any) -> dict[str, Any]:
    blocked, t, kind = kw.pop("blocked"), kw.pop("t"), kw.pop("kind", "https")
    slow, via = kw.pop("slow", False), kw.pop("via_proxy", False)
    ok = not blocked and rng.random() > 0.02
    ttfb = rng.uniform(0.25, 0.45) if via else rng.uniform(0.04, 0.12)
    speed = rng.uniform(40_000, 70_000) if slow else rng.uniform(5e6, 9e6)
    r = ProbeResult(
        kind=kind,
        ok=ok,
        outcome="ok" if ok else ("timeout" if blocked else "recv-failed (reset)"),
        started=1_700_000_000 + t / 3600,
        curl_exit=0 if ok else 28,
        http_code=200 if ok else None,
        remote_ip=kw["address"] if ok else None,
        time_starttransfer_s=ttfb if ok else None,
        time_total_s=ttfb + 0.01 if ok else 5.0,
        size_download=65536 if ok and kind == "transfer" else 0,
        speed_download_bps=speed if ok and kind == "transfer" else None,
        subscriber=kw["subscriber"],
        service=kw["service"],
        role=kw["role"],
        target=f"https://{kw['service']}.example/",
        round=kw["round"],
    ).to_json()
    step = STEPS[_step_at(t)][0]
    return {
        **r,
        "isp": kw["isp"],
        "method": kw["method"],
        "scenario_t_s": t,
        "scenario_time": _iso(t),
        "step": step,
    }


def campaign_records(seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    timed: list[tuple[float, int, dict[str, Any]]] = []
    for label, at, _, _, what in STEPS[1:]:
        ev = {
            "kind": "event",
            "scenario_t_s": at,
            "scenario_time": _iso(at),
            "label": label,
            "what": [what]
            + (["circumvention: start socks-proxy, vpn-do"] if label == "telegram subnets" else []),
        }
        timed.append((at, 0, ev))
    for isp, (delay, _, _) in ISPS.items():
        for i, (_label, at, blocked, prefixes, _) in enumerate(STEPS):
            t = 0.0 if i == 0 else at + delay
            timed.append(
                (
                    t,
                    1,
                    {
                        "kind": "registry",
                        "isp": isp,
                        "scenario_t_s": t,
                        "scenario_time": _iso(t),
                        "step": STEPS[_step_at(t)][0],
                        "blocked_addresses": blocked,
                        "prefixes": prefixes,
                        "domains": 3 * i,
                    },
                )
            )
    # Every 12 h, and at each timeline entry (`probe: true`).
    moments = sorted({k * EVERY for k in range(int(END // EVERY))} | {s[1] for s in STEPS})
    for round_no, t0 in enumerate(moments, start=1):
        t = t0
        for isp, (delay, n_subs, uncovered) in ISPS.items():
            eff = _effective_step(t0, delay)
            for k in range(1, n_subs + 1):
                behind_tspu = k <= n_subs - uncovered
                sub = f"{isp[:8]}-{k}"
                base = {"isp": isp, "subscriber": sub, "round": round_no}
                for name, role, _, address, _, blocked_from in SERVICES:
                    blocked = behind_tspu and blocked_from is not None and eff >= blocked_from
                    slow = name == "youtube" and eff >= DEGRADED_STEP and behind_tspu
                    t += 20
                    p = _probe(
                        rng,
                        t=t,
                        service=name,
                        role=role,
                        address=address,
                        method="direct",
                        blocked=blocked,
                        **base,
                    )
                    timed.append((t, 2, p))
                    if p["ok"]:
                        timed.append(
                            (
                                t + 5,
                                2,
                                _probe(
                                    rng,
                                    t=t + 5,
                                    kind="transfer",
                                    service=name,
                                    role=role,
                                    address=address,
                                    method="direct",
                                    blocked=False,
                                    slow=slow,
                                    **base,
                                ),
                            )
                        )
                if _step_at(t0) < 1:
                    continue
                for method, (_, address, blocked_from) in CIRCUMVENTION.items():
                    blocked = behind_tspu and blocked_from is not None and eff >= blocked_from
                    t += 20
                    timed.append(
                        (
                            t,
                            2,
                            _probe(
                                rng,
                                t=t,
                                service="telegram",
                                role="target",
                                address=address,
                                method=method,
                                blocked=blocked,
                                via_proxy=True,
                                **base,
                            ),
                        )
                    )
    timed.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in timed]


def campaign_meta() -> RunMeta:
    """run.json as the runner writes it: through its contract, never by hand."""
    return RunMeta(
        name="telegram-2018-campaign",
        scenario="scenarios/telegram-2018-campaign.yaml",
        started=1_700_000_000.0,
        clock_start=CLOCK_START,
        clock_speed=86400,
        tspu=True,
        capture=False,
        isps=[
            IspMeta(
                name=isp,
                profile="rkn-2018-ip",
                subscribers=[f"{isp[:8]}-{k}" for k in range(1, n + 1)],
                coverage=round((n - u) / n, 3),
                update_delay_s=delay,
                fail_mode="closed",
                tspu_switch=f"t{i}",
            )
            for i, (isp, (delay, n, u)) in enumerate(ISPS.items(), start=1)
        ],
        services=[
            ServiceMeta(name=n, role=r, users=u, address=a, cloud=c)
            for n, r, u, a, c, _ in SERVICES
        ],
        circumvention=list(CIRCUMVENTION),
        probes={"degraded_below_kbps": 1000.0},
        datapath="netdev (userspace)",
        netem=False,
        cloud_hosts={},
    )


CAMPAIGN_EXPECT: list[dict[str, Any]] = [
    {"service": "telegram", "state": "blocked", "from": "telegram subnets"},
    {
        "service": "telegram",
        "method": "socks-proxy",
        "state": "reachable",
        "from": "telegram subnets",
    },
    {"service": "yandex", "state": "reachable"},
    {"service": "youtube", "isp": "rostelecom", "state": "degraded", "from": "google ranges"},
    {"metric": "collateral_damage", "op": ">=", "value": 0.4, "at": "almost 16 M"},
    {"metric": "blocked_addresses", "op": ">=", "value": 10_000_000, "at": "almost 16 M"},
    {"metric": "collateral_damage_weighted", "op": "<=", "value": 0.0, "at": "start"},
    {
        "metric": "circumvention_success",
        "method": "vpn-do",
        "op": ">=",
        "value": 0.9,
        "at": "google ranges",
    },
]


def write_campaign(run_dir: Path, seed: int = 7) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in campaign_records(seed):
            f.write(json.dumps(r, sort_keys=True) + "\n")
    campaign_meta().write(run_dir / "run.json")
    return run_dir


# --- the fixture itself behaves like the story it tells --------------------------------------


def _timeline() -> Any:
    meta = campaign_meta().model_dump(mode="json")
    return build_timeline(
        campaign_records(),
        services_from_meta(meta),
        clock_start=parse_clock_start(meta["clock_start"]),
    )


def test_fixture_registry_rises_and_collateral_grows() -> None:
    tl = _timeline()
    assert [b.key for b in tl.steps] == [s[0] for s in STEPS]
    for isp in ISPS:
        blocked = [v for _, v in tl.series("blocked_addresses", isp, "step")]
        assert blocked[0] == 0 and blocked[-1] == 15_700_000 and blocked == sorted(blocked)
    damage = [v for _, v in tl.series("collateral_damage", "rostelecom", "step")]
    assert damage[0] == 0.0 and damage[-1] == 0.5 and damage == sorted(damage)


def test_fixture_socks_proxy_stays_reachable() -> None:
    tl = _timeline()
    assert tl.methods == ["socks-proxy", "vpn-do"]
    ok, tries = tl.circumvention_table[("socks-proxy", "telegram")]
    assert tries >= 14 * 7 and ok / tries > 0.9  # ≥ 14 rounds from stage 1, 7 subscribers
    ok, tries = tl.circumvention_table[("vpn-do", "telegram")]
    assert ok / tries < 0.5


if __name__ == "__main__":
    print(write_campaign(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tspulab-campaign")))
