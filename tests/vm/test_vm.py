"""Inside the test VM (Debian's kernel: netem and the Open vSwitch module): modules load, netem
gives the configured delay, the kernel datapath forwards, and the two loss- and rate-based
slowdowns land on their published figures at real round-trip times.

One boot runs every measurement (tests/vm/guest_checks.py); each test asserts on its part. The
figures and the guest's run directories stay in runs/vm-tier/ (docs/vm.md).
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from tests.vm.conftest import VmRun

THROTTLE_KBPS = 130  # twitter-throttle-2021 (docs/tspu-behaviour.md §3, CP-THR)
YOUTUBE_KBYTES_S = (45, 180)  # youtube-2024, curl across ~30 ISPs (§5.7, NTC-8055 posts 2, 7)


def _probes(lab: dict[str, Any], subscriber: str, service: str, kind: str) -> list[dict[str, Any]]:
    return [p for p in lab["probes"] if p["subscriber"] == subscriber and p["service"] == service
            and (p["kind"] == "ping") == (kind == "ping") and p["ok"]]  # fmt: skip


def _goodput(
    lab: dict[str, Any], subscriber: str, service: str, pick: Any = statistics.median
) -> float:
    """Bytes/s of the body of the subscriber's transfers from the service (`pick` over rounds,
    the median by default).

    From the first byte to the last: under emulation a TLS handshake takes seconds of guest CPU,
    which curl's whole-transfer average would count as slowness of the link."""
    rates = []
    for p in _probes(lab, subscriber, service, "https"):
        if (p["size_download"] or 0) < 256 * 1024:
            continue
        body_s = p["time_total_s"] - (p["time_starttransfer_s"] or 0.0)
        rates.append(p["size_download"] / body_s if body_s > 0 else p["speed_download_bps"])
    if not rates:
        tried = [p for p in lab["probes"] if p["subscriber"] == subscriber
                 and p["service"] == service and p["kind"] == "https"]  # fmt: skip
        if tried and all(p["outcome"] == "dns-failure" for p in tried):
            # Every lookup is a new flow the controller judges first; in an emulated guest on a
            # loaded host that can take longer than the resolver's 2 s in every round. Nothing
            # was measured, so nothing is claimed (the skip says so; the figures are in runs/).
            pytest.skip(f"{subscriber} never resolved {service} in the emulated guest")
    assert rates, f"no transfer {subscriber} <- {service}: {lab['output_tail']}"
    return float(pick(rates))


def _ping_ms(lab: dict[str, Any], services: tuple[str, ...]) -> list[float]:
    """The lowest ping of each (subscriber, service) pair over the rounds: the first packet of a
    flow waits for the controller, seconds in the emulated guest."""
    out = []
    for sub in ("twit-1", "yt-1"):
        for svc in services:
            rtts = [p["time_total_s"] * 1000 for p in _probes(lab, sub, svc, "ping")
                    if p["time_total_s"]]  # fmt: skip
            out += [min(rtts)] if rtts else []
    return out


def test_image_builds_and_boots(vm_run: VmRun) -> None:
    assert vm_run.guest_rc == 0, vm_run.log_tail
    assert vm_run.boot_s is not None and vm_run.boot_s < 120


def test_kernel_modules_load(vm_run: VmRun) -> None:
    result = vm_run.check("modules")
    assert result["loaded"] == {"sch_netem": True, "openvswitch": True}


def test_netem_delay_measured_by_ping(vm_run: VmRun) -> None:
    result = vm_run.check("netem_veth")
    assert len(result["rtts_ms"]) >= 15 and len(result["baseline_rtts_ms"]) >= 15
    # What netem adds: the link's lowest round trip with it less without it. Ping's minimum is
    # the path's delay; in an emulated guest on a loaded host, scheduling adds 0-50 ms to single
    # samples (medians 5-20 % high), never takes any away.
    added = min(result["rtts_ms"]) - min(result["baseline_rtts_ms"])
    configured = result["configured_rtt_ms"]
    assert abs(added - configured) <= 0.10 * configured, (added, result)


def test_ovs_kernel_datapath_forwards(vm_run: VmRun) -> None:
    result = vm_run.check("ovs_kernel_datapath")
    assert result["datapath_type"] == "system" and result["kernel_datapath"]
    assert len(result["rtts_ms"]) == 3
    assert result["kernel_flows"] >= 1, "the kernel's flow table switched the pings"


def _lab(vm_run: VmRun) -> dict[str, Any]:
    lab = vm_run.check("lab")
    assert lab["probes"], f"the lab run measured nothing: {lab['output_tail']}"
    delays = lab["delays"]
    assert delays is not None, "run.json has no delays record: is shape_links in the run stack?"
    assert delays["applied"] and delays["netem"], delays
    # The module is loaded in the VM, so the lab's switches run on the kernel datapath.
    assert lab["datapath"] == "kernel (system)", lab["datapath"]
    return lab


def test_lab_round_trips_include_the_configured_delay(vm_run: VmRun) -> None:
    """Ping through the lab (the lowest of each pair over two rounds): at least the configured
    50 ms to the foreign clouds. Not held to 10 % here: one ping per pair and round, in an
    emulated guest on a loaded host, varies from 55 ms to seconds (the veth check above holds
    netem itself to 10 %)."""
    lab = _lab(vm_run)
    foreign = _ping_ms(lab, ("twitter", "google", "googlevideo"))
    assert len(foreign) >= 2, lab["probes"]
    configured = lab["configured_rtt_ms"]
    assert min(foreign) >= configured["twitter"] * 0.95, foreign


def test_twitter_throttle_goodput_at_50ms(vm_run: VmRun) -> None:
    lab = _lab(vm_run)
    kbps = _goodput(lab, "twit-1", "twitter") * 8 / 1000
    assert THROTTLE_KBPS * 0.85 <= kbps <= THROTTLE_KBPS * 1.15, (kbps, _ping_ms(lab, ("twitter",)))
    # The same subscriber and TSPU do not throttle a name outside Twitter's rules.
    assert _goodput(lab, "twit-1", "google") * 8 / 1000 > 5 * THROTTLE_KBPS


def test_youtube_loss_slows_googlevideo_not_google(vm_run: VmRun) -> None:
    lab = _lab(vm_run)
    slowed = _goodput(lab, "yt-1", "googlevideo", pick=max)  # every googlevideo transfer
    # The same cloud under another name is not slowed (§5.7: a different SNI to a Google IP).
    assert slowed < 0.5 * _goodput(lab, "yt-1", "google")


def test_youtube_goodput_in_published_range(vm_run: VmRun) -> None:
    """§5.7: 45-180 KB/s. youtube-2024's loss is derived for this lab's 50 ms round trip
    (docs/profiles.md). The median over the rounds: a run's first googlevideo transfer used to
    escape the loss (its nftables rule came from an `nft` process, seconds late in the emulated
    guest); the rule now goes in through libnftables in the controller (docs/vm.md)."""
    lab = _lab(vm_run)
    kbytes_s = _goodput(lab, "yt-1", "googlevideo") / 1000
    low, high = YOUTUBE_KBYTES_S
    assert low <= kbytes_s <= high, (kbytes_s, _ping_ms(lab, ("googlevideo",)))
