"""The demo scenario on a real lab: registry prefixes blocked in the TSPU switch, collateral damage
measured with real HTTPS fetches, and nothing of the run left after teardown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, sandbox_gone, silent
from tspulab.controllers.pipeline import COOKIE_REGISTRY
from tspulab.metrics.results import read_results
from tspulab.scenario.runner import run_scenario
from tspulab.scenario.schema import load_scenario

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return in_sandbox(
        run_scenario, load_scenario(DEMO), tmp_path_factory.mktemp("runs"), log=silent
    )


def test_targets_blocked_and_collateral_measured(demo_run) -> None:  # type: ignore[no-untyped-def]
    s = demo_run.summary
    by = {x.name: x for x in s.services}
    assert by["telegram-web"].broken and by["telegram-aws"].broken
    assert by["viber"].broken, "Viber shares the blocked AWS /15: collateral damage"
    assert by["viber"].outcomes == {"timeout": 4}, "IP mode drops silently: curl times out"
    assert not by["evernote"].broken and by["evernote"].ok == by["evernote"].probes == 4
    assert not by["yandex"].broken and by["yandex"].ok == 4
    assert s.intended_blocking == 1.0
    assert s.collateral_damage == pytest.approx(1 / 3)
    assert s.collateral_damage_weighted == pytest.approx(40 / 140)
    assert s.blocked_addresses == 140_544 and s.registry_prefixes == 7
    assert s.target_addresses == 2


def test_results_written_as_measured(demo_run) -> None:  # type: ignore[no-untyped-def]
    results = read_results(demo_run.run_dir / "results.jsonl")
    https = [r for r in results if r["kind"] == "https"]
    assert len(https) == 2 * 2 * 5
    ok = [r for r in https if r["ok"]]
    assert {r["remote_ip"] for r in ok} == {"35.190.4.12", "77.88.55.60"}
    assert all(r["time_appconnect_s"] and r["time_appconnect_s"] > 0 for r in ok)
    assert (demo_run.run_dir / "report.html").read_text().count("broken") >= 3


def test_registry_in_switch_and_bulk_bypasses_controller(demo_run) -> None:  # type: ignore[no-untyped-def]
    extra = demo_run.summary.extra
    flows = extra["tspu_flows"]
    registry = [f for f in flows if f["cookie"] == COOKIE_REGISTRY]
    assert len(registry) == 2 * 7
    assert sum(f["n_packets"] for f in registry) > 0, "blocked SYNs were dropped in the switch"
    bulk = extra["bulk"]
    assert bulk["ok"] and bulk["bytes"] == 32 * 1024 * 1024
    # The whole download entered the TSPU switch upstream (port 2) and left toward the
    # subscribers (port 1)...
    assert bulk["tspu_port_delta"]["2"]["rx_bytes"] > 32 * 1024 * 1024
    assert bulk["tspu_port_delta"]["1"]["tx_bytes"] > 32 * 1024 * 1024
    # ...and not one packet of the TSPU switch went to the controller.
    events = read_results(demo_run.run_dir / "controller-events.jsonl")
    refused = [e for e in events if e.get("event") == "packet-in-refused"]
    assert refused == [], "under an IP-only profile no packet of the TSPU climbs"
    assert demo_run.summary.extra["controller_stats"]["packet_ins"] == 0
    assert extra["controller_events"]["tspu-rules-installed"] == 1


def test_teardown_leaves_nothing(demo_run) -> None:  # type: ignore[no-untyped-def]
    assert demo_run.leftovers == [], "teardown should not need the record replay"
    assert leftovers(demo_run.run_dir) == []
    assert sandbox_gone(demo_run.run_dir)
