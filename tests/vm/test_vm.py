"""Inside the test VM (Debian's kernel: netem and the Open vSwitch module): modules load, netem
gives the configured delay, the kernel datapath forwards, and the two loss- and rate-based
slowdowns land on their published figures at real round-trip times.

One boot runs every measurement (tests/vm/guest_checks.py); each test asserts on its part. The
figures and the guest's run directories stay in runs/vm-tier/ (docs/vm.md).
"""

from __future__ import annotations

import statistics
from typing import Any

from tests.vm.conftest import VmRun

THROTTLE_KBPS = 130  # twitter-throttle-2021 (docs/tspu-behaviour.md §3, CP-THR)
YOUTUBE_KBYTES_S = (45, 180)  # youtube-2024, curl across ~30 ISPs (§5.7, NTC-8055 posts 2, 7)


def _transfers(result: dict[str, Any], service: str) -> list[float]:
    """Goodputs (bytes/s) of the service's bulk transfers (the largest downloads)."""
    rows = [p for p in result["probes"] if p["service"] == service and p["kind"] != "ping"
            and p["ok"] and (p["size_download"] or 0) > 64 * 1024]  # fmt: skip
    return [p["speed_download_bps"] for p in rows]


def _ping_rtts_ms(result: dict[str, Any]) -> list[float]:
    return [p["time_total_s"] * 1000 for p in result["probes"]
            if p["kind"] == "ping" and p["ok"] and p["time_total_s"]]  # fmt: skip


def _connect_rtts_ms(result: dict[str, Any], service: str) -> list[float]:
    """TCP handshakes (curl's connect minus name lookup): one round trip each."""
    return [(p["time_connect_s"] - p["time_namelookup_s"]) * 1000 for p in result["probes"]
            if p["service"] == service and p["kind"] != "ping" and p["time_connect_s"]]  # fmt: skip


def test_image_builds_and_boots(vm_run: VmRun) -> None:
    assert vm_run.guest_rc == 0, vm_run.log_tail
    assert vm_run.boot_s is not None and vm_run.boot_s < 120


def test_kernel_modules_load(vm_run: VmRun) -> None:
    result = vm_run.check("modules")
    assert result["loaded"] == {"sch_netem": True, "openvswitch": True}


def test_netem_delay_measured_by_ping(vm_run: VmRun) -> None:
    result = vm_run.check("netem_veth")
    rtt = statistics.median(result["rtts_ms"])
    assert len(result["rtts_ms"]) >= 8
    assert abs(rtt - result["configured_rtt_ms"]) <= 0.10 * result["configured_rtt_ms"], rtt


def test_ovs_kernel_datapath_forwards(vm_run: VmRun) -> None:
    result = vm_run.check("ovs_kernel_datapath")
    assert result["datapath_type"] == "system" and result["kernel_datapath"]
    assert len(result["rtts_ms"]) == 3
    assert result["kernel_flows"] >= 1, "the kernel's flow table switched the pings"


def _delays_applied(result: dict[str, Any]) -> None:
    assert result["exit"] == 0 or result["probes"], result["stderr_tail"]
    delays = result["delays"]
    assert delays is not None, "run.json has no delays record: is shape_links in the run stack?"
    assert delays["applied"] and delays["netem"], delays


def test_twitter_throttle_goodput_at_50ms(vm_run: VmRun) -> None:
    result = vm_run.check("twitter")
    _delays_applied(result)
    rtts = _ping_rtts_ms(result) or _connect_rtts_ms(result, "twitter")
    assert rtts, "no round trip measured"
    rtt = statistics.median(rtts)
    assert abs(rtt - result["configured_rtt_ms"]) <= 0.10 * result["configured_rtt_ms"], rtts
    for service in ("twitter", "twimg"):
        goodputs = _transfers(result, service)
        assert goodputs, f"no transfer from {service}"
        kbps = statistics.median(goodputs) * 8 / 1000
        assert THROTTLE_KBPS * 0.85 <= kbps <= THROTTLE_KBPS * 1.15, (service, kbps, rtt)


def test_youtube_goodput_in_published_range(vm_run: VmRun) -> None:
    result = vm_run.check("youtube")
    _delays_applied(result)
    goodputs = _transfers(result, "googlevideo")
    assert goodputs, "no transfer from googlevideo"
    kbytes_s = statistics.median(goodputs) / 1000
    low, high = YOUTUBE_KBYTES_S
    assert low <= kbytes_s <= high, (kbytes_s, _ping_rtts_ms(result))
    # The same cloud under another name is not slowed (§5.7: a different SNI to a Google IP).
    other = _transfers(result, "google")
    assert other and statistics.median(other) / 1000 > 2 * high
