"""The four VPN campaign scenarios on real labs, with real OpenVPN, WireGuard, Shadowsocks, SSH and
trojan, and the DTLS call and UDP game of vpn-detection: each scenario's own expectations, then what
its report adds (docs/scenarios/*.md).

The four labs run at the same time, each in its own sandbox: most of a run is waiting (a blocked
tunnel's client waits out its handshake), so side by side they take about as long as the
longest one instead of the sum.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.metrics.results import read_results
from tspulab.metrics.vpn import outages
from tspulab.scenario.runner import RunOutcome, run_scenario
from tspulab.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("vpn-ban", "vpn-detection", "vpn-crackdown-2026", "mobile-whitelist-2025")


def _run(name: str, runs: Path) -> RunOutcome:
    return in_sandbox(
        run_scenario, load_scenario(ROOT / "scenarios" / f"{name}.yaml"), runs, log=silent,
        bulk_transfer=False, allow_commands=name == "vpn-detection",
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunOutcome]:
    base = tmp_path_factory.mktemp("vpn")
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        futures = {name: pool.submit(_run, name, base / name) for name in SCENARIOS}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_expectation_holds_and_nothing_is_left(
    runs: dict[str, RunOutcome], name: str
) -> None:
    outcome = runs[name]
    results = outcome.report.expectations
    assert results and all(r.passed for r in results), [r.message for r in results if not r.passed]
    assert outcome.leftovers == [] and leftovers(outcome.run_dir) == []


def _probes(outcome: RunOutcome) -> list[dict[str, Any]]:
    return [r for r in read_results(outcome.run_dir / "results.jsonl") if r.get("kind") == "https"]


def test_vpn_ban_compliant_vpn_tunnel_works_but_its_exit_drops_the_registry(
    runs: dict[str, RunOutcome],
) -> None:
    """§10.1: Kaspersky joined the registry system; its users still could not reach Telegram."""
    step = [r for r in _probes(runs["vpn-ban"]) if r["step"] == "Kaspersky complies"]
    via = {r["service"]: r for r in step if r["method"] == "kaspersky"}
    assert via["yandex"]["ok"] and via["twitter"]["ok"] and not via["telegram"]["ok"]
    assert via["telegram"]["outcome"] == "timeout", "the tunnel is up; the exit drops Telegram"
    page = runs["vpn-ban"].report.path.read_text()
    assert "Tools per date" in page and "Own tunnels: collateral damage" in page
    corp = {o.method: o for o in outages(read_results(runs["vpn-ban"].run_dir / "results.jsonl"))}
    assert corp["corp-a-vpn"].failing_steps == []
    assert corp["corp-b-vpn"].failing_steps == ["tunnels reconnect"]


def test_vpn_crackdown_outage_where_it_happened_not_where_whitelisted(
    runs: dict[str, RunOutcome],
) -> None:
    found = outages(read_results(runs["vpn-crackdown-2026"].run_dir / "results.jsonl"))
    pos = {o.isp: o for o in found if o.method == "pos-tunnel"}
    assert pos["moscow"].failing_steps == ["payments fail", "state services fail"]
    assert pos["region"].failing_steps == ["payments fail", "state services fail"]
    assert pos["whitelisted"].failing_steps == [] and pos["whitelisted"].windows == []
    # two outages, 07:00 to 19:00 on each day (from the failing step to the recovered one)
    assert pos["moscow"].duration_s == 2 * 12 * 3600.0
    assert len(pos["moscow"].windows) == 2


def test_vpn_detection_flags_vpn_users_and_cgnat_neighbours(runs: dict[str, RunOutcome]) -> None:
    """The detect log names VPN users' flows (and the bank's WireGuard); joined on a shared CGNAT
    address it also names subscribers who use no VPN."""
    page = runs["vpn-detection"].report.path.read_text()
    assert "Detection: who is flagged as a VPN user" in page
    assert "VPN users found" in page and "shares 203.0.113." in page
