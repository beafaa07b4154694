"""A registry push mid-run becomes a diff in the switch: the newly listed cloud is cut off at once,
the delisted one comes back, and nothing else is disturbed."""

from __future__ import annotations

from pathlib import Path

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.controllers.pipeline import COOKIE_REGISTRY
from tspulab.lab.ofctl import parse_dump_flows
from tspulab.scenario.build import build_registry
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def _registry_rules(live: LiveLab) -> set[str]:
    flows = parse_dump_flows(live.lab.dump_flows(live.tspu_switch))
    return {f.match for f in flows if f.cookie == COOKIE_REGISTRY}


def _registry_diff(tmp_path: Path) -> Path:
    scenario = load_scenario(DEMO)
    with LiveLab(scenario, tmp_path, log=silent) as live:
        assert live.probe("sub1", "evernote").ok
        assert not live.probe("sub1", "viber").ok
        before = _registry_rules(live)
        assert len(before) == 14

        # Stage 2: Google Cloud's /17 is listed, and AWS's /15 is released.
        new = build_registry(scenario)
        new.add_address("35.190.0.0/17", source="stage-2")
        updated = type(new)()
        for entry in new.address_entries():
            if str(entry.network) != "18.196.0.0/15":
                updated.add_address(str(entry.network), source=entry.source)
        reply = live.push_registry(updated)
        assert reply["ok"] and reply["added"] == 1 and reply["removed"] == 1

        after = _registry_rules(live)
        assert len(after) == 14
        assert any("35.190.0.0/17" in m for m in after - before)
        assert any("18.196.0.0/15" in m for m in before - after)
        # The unchanged prefixes' rules were not touched (same set minus/plus the diff).
        assert len(before & after) == 12

        evernote = live.probe("sub1", "evernote", timeout_s=2)
        assert not evernote.ok and evernote.outcome == "timeout"
        assert live.probe("sub1", "viber").ok, "released from the registry: reachable again"
        assert not live.probe("sub1", "telegram-web", timeout_s=2).ok
    return live.run_dir


def test_registry_diff_applied_mid_run(tmp_path: Path) -> None:
    run_dir = in_sandbox(_registry_diff, tmp_path)
    assert leftovers(run_dir) == []
