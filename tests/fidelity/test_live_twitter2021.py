"""Fidelity, live: the 2021 Twitter throttler (tspu-behaviour.md §3, CP-THR, IMC 2021) in a real
lab: Open vSwitch meters police the flows the os-ken TSPU judged, real TLS over real TCP.

One lab for the module (`tests/fidelity/scenarios/twitter-2021-fidelity.yaml`, idle timers 100x
faster); every measurement is made in one sandbox run, then each test checks one statement.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import silent
from tests.fidelity.livelab import rtt_ms, sandboxed, start_wire_server, verdicts, wire
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

REPO = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("scenarios") / "twitter-2021-fidelity.yaml"
KB = 1024
TTLS = range(1, 7)
TTL_PORT = 45200
TSPU_AFTER_ROUTERS = 2  # the scenario's topology.hops.tspu


def _fast(live: LiveLab) -> dict[str, Any]:
    """The unthrottled transfers (and the outside-initiated one), one after another."""
    sub = live.host("sub1")
    tw, ya = live.addresses["twitter"], live.addresses["yandex"]
    m: dict[str, Any] = {"rtt_ms": rtt_ms(sub, tw)}
    m["control"] = wire(sub, "--addr", ya, "--sni", "yandex.ru", "--request", str(256 * KB))
    m["no_sni"] = wire(
        sub, "--addr", tw, "--sni", "", "--host", "twitter.com", "--request", str(256 * KB)
    )
    m["fresh_port"] = wire(
        sub, "--addr", tw, "--sni", "www.example.org", "--host", "twitter.com",
        "--request", str(256 * KB),
    )  # fmt: skip
    # The connection opened from outside: the server in the subscriber's namespace.
    start_wire_server(live, sub, ["twitter.com"], 256 * KB)
    m["outside"] = wire(
        live.host("twitter"), "--addr", sub.IP(), "--sni", "twitter.com",
        "--request", str(256 * KB),
    )  # fmt: skip
    return m


def _rst_pair(live: LiveLab) -> dict[str, Any]:
    """A RST ends a throttled connection; a new one on the same 5-tuple names another host."""
    sub, tw = live.host("sub1"), live.addresses["twitter"]
    before = wire(
        sub, "--addr", tw, "--sni", "twitter.com", "--sport", "45123",
        "--request", "20000", "--rst",
    )  # fmt: skip
    after = wire(
        sub, "--addr", tw, "--sni", "www.example.org", "--host", "twitter.com",
        "--sport", "45123", "--request", str(48 * KB),
    )  # fmt: skip
    return {"before_rst": before, "after_rst": after}


def _throttled(live: LiveLab) -> dict[str, Any]:
    """The throttled transfers, at the same time: each flow has its own meters (the policer is
    per flow and direction), so they do not share a bucket."""
    sub = live.host("sub1")
    tw, ya = live.addresses["twitter"], live.addresses["yandex"]
    jobs: dict[str, tuple[str, ...]] = {
        "policed": ("--addr", tw, "--sni", "twitter.com", "--request", str(64 * KB)),
        "sni_elsewhere": ("--addr", ya, "--sni", "abs.twimg.com", "--host", "yandex.ru",
                          "--request", str(48 * KB)),
        # Two requests on one throttled connection with a 2 s gap (3.3 scenario minutes): the
        # state is kept while the flow is active.
        "active": ("--addr", tw, "--sni", "twitter.com", "--request", str(24 * KB),
                   "--request", f"{48 * KB}@2"),
    }  # fmt: skip
    # CP-THR's TTL-limited probes: a Twitter ClientHello with TTL 1..6, each on its own port;
    # the smallest TTL the box acts on locates it.
    for ttl in TTLS:
        jobs[f"ttl{ttl}"] = ("--addr", tw, "--sni", "twitter.com", "--sport", str(TTL_PORT + ttl),
                             "--hello-ttl", str(ttl), "--timeout", "1.5")  # fmt: skip
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
        futures = {name: pool.submit(wire, sub, *args) for name, args in jobs.items()}
        rst = pool.submit(_rst_pair, live)
        return {**{name: f.result() for name, f in futures.items()}, **rst.result()}


def _measure(runs: Path) -> dict[str, Any]:
    with LiveLab(load_scenario(SCENARIO), runs, log=silent) as live:
        m: dict[str, Any] = {"run_dir": str(live.run_dir), **_fast(live), **_throttled(live)}
        # Two requests on one throttled connection, 7 s (11.7 scenario minutes) apart, alone: once
        # (of three runs) with five throttled flows beside it, the flow re-judged after the idle
        # expiry stayed at ~170 kbit/s; not seen alone or with one other flow (not explained).
        m["idle"] = wire(
            live.host("sub1"), "--addr", live.addresses["twitter"], "--sni", "twitter.com",
            "--request", str(48 * KB), "--request", f"{256 * KB}@7",
        )  # fmt: skip
        m["verdicts"] = verdicts(live)
    return m


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return sandboxed(tmp_path_factory, _measure)


def kbps(result: dict[str, Any], key: str = "rate_after_burst_bps", i: int = 0) -> float:
    request = result["requests"][i]
    value = request[key]
    assert value is not None and request["complete"], result
    return float(value) / 1000


@pytest.mark.fidelity("s3-rate", "t06")
def test_s3_policed_rate_is_130_to_150_kbps_cp_thr(lab: dict[str, Any], record_fidelity) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR (abstract; the report's replays): a Twitter SNI is throttled to 130-150 kbit/s
    (replays 100-150). Measured from the first TLS record (past the burst) to the end of a 64 KB download.
    Tolerance: the published 100-150 kbit/s widened by 15 %: 85-172.5 kbit/s; the unthrottled
    control to another server must be at least 10x faster."""
    rate = kbps(lab["policed"])
    control = kbps(lab["control"], "goodput_bps")
    record_fidelity("s3-rate", measured=f"{rate:.0f} kbit/s (control {control / 1000:.0f} Mbit/s)")
    record_fidelity("t06", measured=f"{rate:.0f} kbit/s downstream")
    assert 85 <= rate <= 172.5, lab["policed"]
    assert control >= 10 * rate


@pytest.mark.fidelity("s3-policing")
def test_s3_policing_burst_16_kb_in_100_ms_cp_thr(lab: dict[str, Any], record_fidelity) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR ("16 KB in 100 ms, then everything dropped for the next 900 ms"): policing by a
    token bucket, not a shaper's queue. Measured: response bytes in the first 100 ms of the
    response, then the rate. Tolerance: 10-20 KB in the first 100 ms (the bucket is 16 KB of
    frames; the TLS handshake's server flight spends part of it first, headers the rest)."""
    first = lab["policed"]["requests"][0]
    burst = first["burst_bytes"]
    record_fidelity("s3-policing", measured=f"{burst / KB:.1f} KB in the first 100 ms, then "
                    f"{kbps(lab['policed']):.0f} kbit/s")  # fmt: skip
    assert 10 * KB <= burst <= 20 * KB, first


@pytest.mark.fidelity("s3-sni-only")
def test_s3_only_the_sni_counts_not_the_address_cp_thr(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR (N4P-#65 citing NTC): TLS to a Twitter address without SNI was not throttled; a
    Twitter SNI to a non-Twitter server was. Tolerance: throttled below 172.5 kbit/s, not
    throttled above 10x that."""
    elsewhere = kbps(lab["sni_elsewhere"])
    no_sni = kbps(lab["no_sni"], "goodput_bps")
    record_fidelity("s3-sni-only", measured=f"abs.twimg.com to Yandex's address {elsewhere:.0f} "
                    f"kbit/s; no SNI to Twitter's address {no_sni / 1000:.0f} Mbit/s")  # fmt: skip
    assert elsewhere <= 172.5
    assert no_sni >= 10 * 172.5


@pytest.mark.fidelity("s3-state", "t10")
def test_s3_state_survives_a_rst_on_the_same_5_tuple_cp_thr(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR ("FIN or RST does not clear the state"): after a RST, a new connection from the
    same port to the same server, naming an innocent host, is still throttled; from another
    port it is not. Tolerance as for the rate."""
    assert lab["before_rst"]["requests"][0]["complete"], lab["before_rst"]
    after = kbps(lab["after_rst"])
    fresh = kbps(lab["fresh_port"], "goodput_bps")
    record_fidelity("s3-state", measured=f"after RST, same 5-tuple: {after:.0f} kbit/s; "
                    f"another port: {fresh / 1000:.0f} Mbit/s")  # fmt: skip
    record_fidelity("t10", measured=f"after RST: {after:.0f} kbit/s")
    assert after <= 172.5, lab["after_rst"]
    assert fresh >= 10 * 172.5


@pytest.mark.fidelity("s3-state", "t10")
def test_s3_idle_state_expires_active_state_stays_cp_thr(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR ("stops monitoring inactive connections after around 10 minutes"; active flows
    stay throttled): with scenario time 100x real time, a request after 7 s idle (11.7 scenario
    minutes) on a throttled connection runs at full speed, one after 2 s (3.3 minutes) is still
    throttled. Tolerance: the idle expiry lies between 3.3 and 11.7 scenario minutes (published
    ~10, swept 5-15); the 2-hour active figure is checked by the engine test in `evidence`."""
    idle = lab["idle"]["requests"]
    active = lab["active"]["requests"]
    assert len(idle) == 2 and len(active) == 2, (lab["idle"], lab["active"])
    before = kbps(lab["idle"])
    after_idle = float(idle[1]["goodput_bps"]) / 1000
    still = kbps(lab["active"], i=1)
    record_fidelity("t10", measured=f"after 11.7 scenario min idle {after_idle / 1000:.0f} Mbit/s; "
                    f"after 3.3 min {still:.0f} kbit/s")  # fmt: skip
    assert before <= 172.5
    assert after_idle >= 10 * 172.5, idle
    assert still <= 172.5, active


@pytest.mark.fidelity("s3-inside-only", "t01", "s2-asymmetric")
def test_s3_outside_initiated_connection_is_not_throttled_cp_thr(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§3 CP-THR ("no throttling when the UMich server opened the TCP connection"), §2.3 CP-TSPU:
    a connection opened from outside to a server in the subscriber's network, with a Twitter
    ClientHello, is not throttled. Tolerance: at least 10x the 172.5 kbit/s ceiling."""
    outside = kbps(lab["outside"], "goodput_bps")
    record_fidelity("s3-inside-only", measured=f"outside-initiated: {outside / 1000:.0f} Mbit/s")
    record_fidelity("t01", measured=f"outside-initiated: {outside / 1000:.0f} Mbit/s")
    record_fidelity("s2-asymmetric", measured=f"outside-initiated: {outside / 1000:.0f} Mbit/s")
    assert lab["outside"]["requests"][0]["complete"], lab["outside"]
    assert outside >= 10 * 172.5


@pytest.mark.fidelity("s1-throttler-5-hops", "t23", "s1-close-to-users")
def test_s1_ttl_limited_hellos_locate_the_throttler_within_5_hops_cp_thr(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§1 CP-THR ("the throttler was within the first 5 hops for all 6 vantage points"), §9.23:
    Twitter ClientHellos with TTL 1..6 (the handshake at full TTL); the box judges those that
    reach it. The lab puts it after 2 routers, so TTL 3 is the smallest it acts on. Tolerance:
    exactly the configured placement, and the published bound (<= 5 hops)."""
    acted = []
    for ttl in TTLS:
        judged = [v["verdict"]["action"] for v in lab["verdicts"]
                  if v["flow"].get("client_port") == TTL_PORT + ttl]  # fmt: skip
        if "police" in judged:
            acted.append(ttl)
    first = min(acted) if acted else None
    record_fidelity("s1-throttler-5-hops", measured=f"acts on TTL >= {first}: throttler between "
                    f"hops {TSPU_AFTER_ROUTERS} and {TSPU_AFTER_ROUTERS + 1}")  # fmt: skip
    record_fidelity("s1-close-to-users", measured=f"TSPU placed and found at hop "
                    f"{TSPU_AFTER_ROUTERS}-{TSPU_AFTER_ROUTERS + 1} (topology.hops)")  # fmt: skip
    record_fidelity("t23", measured=f"throttler located at hop {TSPU_AFTER_ROUTERS}-"
                    f"{TSPU_AFTER_ROUTERS + 1} by TTL-limited ClientHellos")  # fmt: skip
    assert acted == [t for t in TTLS if t > TSPU_AFTER_ROUTERS], lab["verdicts"]
    assert first is not None and first - 1 <= 5
