"""Twitter 2021 on a real lab: SNI-triggered policing at 130 kbit/s in the switch's meters, and
the substring rules' collateral (tspu-behaviour.md §3, CP-THR)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.metrics.results import read_results
from tspulab.scenario.runner import run_scenario
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "twitter-2021.yaml"
PROFILE_KBPS = 130


@pytest.fixture(scope="module")
def twitter_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return in_sandbox(
        run_scenario, load_scenario(SCENARIO), tmp_path_factory.mktemp("runs"),
        bulk_transfer=False, log=silent,
    )  # fmt: skip


def test_twitter_goodput_is_the_profile_rate(twitter_run) -> None:  # type: ignore[no-untyped-def]
    by = {s.name: s for s in twitter_run.summary.services}
    for name in ("twitter", "twimg"):
        goodput = by[name].goodput_kbps
        assert goodput is not None
        # Policing by dropping, one token bucket per direction (CP-THR): within ±15 %.
        assert PROFILE_KBPS * 0.85 <= goodput <= PROFILE_KBPS * 1.15, (name, goodput)
        assert by[name].degraded and not by[name].broken


def test_substring_rules_throttle_innocent_names(twitter_run) -> None:  # type: ignore[no-untyped-def]
    by = {s.name: s for s in twitter_run.summary.services}
    # reddit.com and microsoft.com contain "t.co": slowed like Twitter (CP-THR takeaways).
    assert by["reddit"].degraded and by["microsoft"].degraded
    assert not by["yandex"].degraded
    assert (by["yandex"].goodput_kbps or 0) > 20 * PROFILE_KBPS
    assert twitter_run.summary.collateral_damage == 0.0, "nothing is broken..."
    assert twitter_run.summary.collateral_degraded == pytest.approx(2 / 3), "...but slowed"


def test_policing_runs_in_switch_meters(twitter_run) -> None:  # type: ignore[no-untyped-def]
    flows = twitter_run.summary.extra["tspu_flows"]
    metered = [f for f in flows if "meter:" in f["actions"]]
    # 4 throttled services × (probe + transfer) connections × 2 directions.
    assert len(metered) == 16
    assert sum(f["n_packets"] for f in metered) > 300
    events = read_results(twitter_run.run_dir / "controller-events.jsonl")
    police = [e for e in events if e.get("event") == "verdict"
              and e["verdict"]["action"] == "police"]  # fmt: skip
    assert {e["sni"] for e in police} == {"twitter.com", "pbs.twimg.com", "reddit.com",
                                           "microsoft.com"}  # fmt: skip
    assert all(e["verdict"]["rate_bps"] == 130_000 for e in police)
    assert leftovers(twitter_run.run_dir) == []
