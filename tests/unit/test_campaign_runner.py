"""The campaign runner's pure parts: registry removal, and how many probes a campaign plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry
from tspulab.scenario.campaign_runner import planned_probes, registry_without
from tspulab.scenario.model import data_dir
from tspulab.scenario.schema import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_registry_without_removes_exactly_the_listed_entries() -> None:
    reg = Registry()
    for entry in ("18.196.0.0/15", "149.154.167.99", "2001:67c:4e8::/48"):
        reg.add_address(entry, source="t")
    reg.add_domain("*.twimg.com", MatchKind.SUFFIX, source="t")
    reg.add_domain("twitter.com", MatchKind.EXACT, source="t")
    removal = Registry()
    removal.add_address("18.196.0.0/15", source="r")
    removal.add_domain("twitter.com", MatchKind.EXACT, source="r")
    left = registry_without(reg, removal)
    assert left.contains_address("18.196.1.1") is None
    assert left.contains_address("149.154.167.99") is not None
    assert left.address_count(6) == reg.address_count(6)
    assert left.match_domain("pbs.twimg.com") is not None
    assert left.match_domain("twitter.com") is None
    # A removal of something not listed changes nothing.
    other = Registry()
    other.add_address("1.2.3.0/24", source="r")
    assert registry_without(reg, other).address_count(4) == reg.address_count(4)


def test_planned_probes_counts_methods_once_they_start() -> None:
    if not data_dir(SCENARIOS / "campaign-short.yaml").is_dir():
        pytest.skip("reference data folder not found")
    scenario = load_scenario(SCENARIOS / "campaign-short.yaml")
    # Rounds at 0 (start), day 1, day 1.5, day 2, day 2.5; 2 subscribers × 3 services each, plus
    # the SOCKS method for the one target in the two rounds from day 2 on.
    assert scenario.probe_times() == (0.0, 86400.0, 129600.0, 172800.0, 216000.0)
    assert planned_probes(scenario) == 5 * 2 * 3 + 2 * 2 * 1
