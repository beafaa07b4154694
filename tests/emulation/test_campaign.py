"""A campaign end to end on a real lab: two ISPs with their own TSPU and update delay, a registry
growing on a timeline, a service moving, a SOCKS5 proxy, expectations checked, a report written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.metrics.results import read_results
from tspulab.scenario.runner import run_scenario
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "campaign-short.yaml"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return in_sandbox(
        run_scenario, load_scenario(SCENARIO), tmp_path_factory.mktemp("runs"), log=silent,
        bulk_transfer=False,
    )  # fmt: skip


def test_every_expectation_holds(campaign) -> None:  # type: ignore[no-untyped-def]
    results = campaign.report.expectations
    assert len(results) == 7
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]
    junit = (campaign.run_dir / "junit.xml").read_text()
    assert 'tests="7"' in junit and 'failures="0"' in junit


def test_update_delay_and_stamps(campaign) -> None:  # type: ignore[no-untyped-def]
    records = read_results(campaign.run_dir / "results.jsonl")
    registry = [r for r in records if r["kind"] == "registry"]
    fast = [r["scenario_t_s"] for r in registry if r["isp"] == "fast"]
    slow = [r["scenario_t_s"] for r in registry if r["isp"] == "slow"]
    assert fast == [0.0, 86400.0, 172800.0]
    assert slow == [0.0, 86400.0 + 6 * 3600, 172800.0 + 6 * 3600], "6 h later at ISP slow"
    assert registry[-1]["blocked_addresses"] == 9_472 + 131_072
    probes = [r for r in records if r["kind"] == "https"]
    assert {r["isp"] for r in probes} == {"fast", "slow"}
    assert {r["method"] for r in probes} == {"direct", "socks"}
    assert all(r["scenario_time"].startswith("2018-04-1") for r in probes)
    moved = [
        r for r in probes if r["service"] == "telegram" and r["step"] == "Telegram moves into AWS"
    ]
    assert moved and all(r["ok"] for r in moved), "after the move, not yet listed: reachable"


def test_report_and_teardown(campaign) -> None:  # type: ignore[no-untyped-def]
    page = campaign.report.path.read_text()
    assert "campaign-short" in page and "data:image/png;base64" in page
    assert campaign.leftovers == []
    assert leftovers(campaign.run_dir) == []


def _probe_kinds(tmp_path: Path) -> Path:
    from tspulab.dpi.registry import Registry
    from tspulab.scenario.live import LiveLab

    scenario = load_scenario(SCENARIO)
    with LiveLab(scenario, tmp_path, log=silent) as lab:
        for kind in ("http", "ping", "https"):
            assert lab.probe("fast-1", "yandex", kind=kind).ok, kind
        blocked = Registry()
        blocked.add_address("77.88.55.0/24", source="test")
        assert lab.push_registry(blocked, isp="fast")["ok"]
        for kind in ("http", "ping"):
            result = lab.probe("fast-1", "yandex", kind=kind, timeout_s=1)
            assert not result.ok and result.kind == kind
        assert lab.probe("slow-1", "yandex", kind="ping").ok, "the other ISP is not updated"
    return lab.run_dir


def test_http_and_ping_probe_kinds(tmp_path: Path) -> None:
    """Plain HTTP and ICMP probes in a campaign lab: an IP block stops both (§2.2 IP)."""
    assert leftovers(in_sandbox(_probe_kinds, tmp_path)) == []
