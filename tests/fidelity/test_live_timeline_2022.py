"""Fidelity, live: 2022-03-04 as a timed event (tspu-behaviour.md §2.2 and §7, OONI-22): Twitter
throttled on three ISPs, then at 08:00 UTC every ISP's TSPU switches to the 2022 behaviour and
Twitter gets resets, all at once (central control, §1). One of the ISPs sends half of its
subscribers around its TSPU (§1 NTC-1823 post 19). The whole scenario
(`tests/fidelity/scenarios/twitter-2022-03-04.yaml`) runs through the one runner, timeline and
expectations included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import silent
from tests.fidelity.livelab import sandboxed
from tspulab.metrics.results import read_results
from tspulab.scenario.model import Scenario
from tspulab.scenario.runner import RunOutcome, run_scenario
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).with_name("scenarios") / "twitter-2022-03-04.yaml"
ISPS = ("rostelecom", "mts", "domru")


def _run(runs: Path, scenario: Scenario) -> RunOutcome:
    return run_scenario(scenario, runs, log=silent, bulk_transfer=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    return sandboxed(tmp_path_factory, _run, load_scenario(SCENARIO))


def _twitter(run: RunOutcome, kind: str, step: str) -> dict[str, dict[str, Any]]:
    return {
        r["subscriber"]: r
        for r in read_results(run.run_dir / "results.jsonl")
        if r.get("service") == "twitter" and r.get("kind") == kind and r.get("step") == step
    }


@pytest.mark.fidelity("s2-twitter-switch-2022", "s1-central")
def test_s2_throttling_becomes_resets_at_0800_on_every_isp_ooni22(
    run: RunOutcome, record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§2.2 OONI-22 (key findings), §7: Twitter throttled until 2022-03-04 ~08:00 UTC, then
    blocked by RST after the ClientHello on all ISPs at once. Measured: every covered
    subscriber's Twitter transfer before 08:00 (throttled: below 400 kbit/s, the 40 KB average
    with the 16 KB burst in it; the scenario's degraded threshold), its probe after
    (reset), and the three TSPUs' profile changes. Tolerance: the three changes within 2 s of
    each other (one timeline step, one controller; measured 225 ms, and 567 ms at a load of ~13,
    the commands going one ISP after the other); the scenario's expectations all pass."""
    assert all(e.passed for e in run.report.expectations), [
        e.message for e in run.report.expectations if not e.passed
    ]
    before = _twitter(run, "transfer", "throttling")
    after = _twitter(run, "https", "after")
    covered = ["rostelecom-1", "mts-1", "domru-2"]
    for sub in covered:
        assert before[sub]["speed_download_bps"] * 8 < 400_000, before[sub]
        assert after[sub]["outcome"] == "reset", after[sub]
    changes = [
        e for e in read_results(run.run_dir / "controller-events.jsonl")
        if e.get("event") == "profile-change"
    ]  # fmt: skip
    assert {e["tspu"] for e in changes} == set(ISPS)
    assert all(e["profile"] == "tspu-2022" for e in changes)
    spread = max(e["t"] for e in changes) - min(e["t"] for e in changes)
    kbit = [before[s]["speed_download_bps"] * 8 / 1000 for s in covered]
    record_fidelity(
        "s2-twitter-switch-2022",
        measured=f"before 08:00 {min(kbit):.0f}-{max(kbit):.0f} kbit/s on 3 ISPs; after: reset on "
        f"all 3; profile changed on the 3 TSPUs within {spread * 1000:.0f} ms",
    )
    record_fidelity("s1-central", measured=f"one timeline step changed 3 TSPUs within "
                    f"{spread * 1000:.0f} ms")  # fmt: skip
    assert spread < 2.0


@pytest.mark.fidelity("s1-load-balancing")
def test_s1_half_of_an_isp_bypasses_its_tspu_ntc1823(run: RunOutcome, record_fidelity) -> None:  # type: ignore[no-untyped-def]
    """§1 NTC-1823 post 19: some ISPs (Dom.ru, 2022) sent only part of their traffic through the
    TSPU, so blocking looked intermittent. With coverage 0.5 one of Dom.ru's two subscribers
    reaches Twitter unthrottled and unblocked while the other is throttled, then reset.
    Tolerance: the bypassing subscriber at least 10x faster than the throttled one."""
    before = _twitter(run, "transfer", "throttling")
    after = _twitter(run, "https", "after")
    free, held = before["domru-1"], before["domru-2"]
    record_fidelity("s1-load-balancing", measured=f"domru-1 {free['speed_download_bps'] * 8e-6:.1f}"
                    f" Mbit/s, domru-2 {held['speed_download_bps'] * 8e-3:.0f} kbit/s; after 08:00"
                    f" {after['domru-1']['outcome']} vs {after['domru-2']['outcome']}")  # fmt: skip
    assert free["speed_download_bps"] >= 10 * held["speed_download_bps"]
    assert after["domru-1"]["ok"] and after["domru-2"]["outcome"] == "reset"
