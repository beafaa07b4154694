"""The campaign runner's pure parts: registry removal, and how many probes a campaign plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry
from tspulab.scenario.schema import load_scenario
from tspulab.scenario.timeline_runner import planned_probes, registry_without

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
    scenario = load_scenario(SCENARIOS / "campaign-short.yaml")
    # Rounds at 0 (start), day 1, day 1.5, day 2, day 2.5; 2 subscribers × 3 services each, plus
    # the SOCKS method for the one target in the two rounds from day 2 on.
    assert scenario.probe_times() == (0.0, 86400.0, 129600.0, 172800.0, 216000.0)
    assert planned_probes(scenario) == 5 * 2 * 3 + 2 * 2 * 1


def _campaign_text(extra_probe: str = "", isp_extra: str = "") -> str:
    return f"""version: 1
name: runnable
topology: {{name: single-isp}}
profile: rkn-2018-ip
isps:
  - {{name: a, subscribers: 1{isp_extra}}}
clouds:
  - {{name: c, prefixes: [18.196.0.0/15]}}
services:
  - {{name: t, role: target, domains: [t.example], cloud: c, address: 18.196.0.10}}
  - {{name: i, role: innocent, domains: [i.example], cloud: c, address: 18.196.0.11}}
probes: {{timeout_s: 2{extra_probe}}}
"""


@pytest.mark.parametrize(
    ("probe", "isp", "message"),
    [
        (", kinds: [https, quic]", "", "probes.kinds: quic not implemented yet"),
        (", kinds: [iperf3]", "", "probes.kinds: iperf3 not implemented yet"),
    ],
)
def test_runner_refuses_what_it_cannot_do(
    tmp_path: Path, probe: str, isp: str, message: str
) -> None:
    from tspulab.scenario.schema import load_scenario_text
    from tspulab.scenario.timeline_runner import NotImplementedInRunner, check_runnable

    scenario = load_scenario_text(_campaign_text(probe, isp), tmp_path / "s.yaml")
    with pytest.raises(
        NotImplementedInRunner, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        check_runnable(scenario)


def test_runnable_kinds_pass(tmp_path: Path) -> None:
    from tspulab.scenario.schema import load_scenario_text
    from tspulab.scenario.timeline_runner import check_runnable

    scenario = load_scenario_text(
        _campaign_text(", kinds: [https, http, ping, ttfb]"), tmp_path / "s.yaml"
    )
    check_runnable(scenario)
    assert planned_probes(scenario) == 1 * 3 * 2  # ttfb rides on https
    # dns probes and the ISP's own old filter run (tests/emulation/test_old_filter.py)
    check_runnable(
        load_scenario_text(
            _campaign_text(", kinds: [https, dns]", ", old_filter: true"), tmp_path / "s2.yaml"
        )
    )
