"""The DPI TSPU on a real lab (tspu-2022 profile): SNI-I, SNI-II and SNI-IV against real
nginx/curl handshakes, first packets only through the controller, and live verdicts identical to a
replay of the captured traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.metrics.results import read_results
from tspulab.parity import compare_run
from tspulab.scenario.runner import run_scenario
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "tspu-2022-sni.yaml"


@pytest.fixture(scope="module")
def sni_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return in_sandbox(
        run_scenario, load_scenario(SCENARIO), tmp_path_factory.mktemp("runs"), capture=True,
        log=silent,
    )  # fmt: skip


def test_each_sni_mode_gives_its_published_reaction(sni_run) -> None:  # type: ignore[no-untyped-def]
    by = {s.name: s for s in sni_run.summary.services}
    # SNI-I (§2.2): the server's reply is rewritten into a RST: curl sees a reset at once.
    assert by["twitter"].outcomes == {"reset": 2}
    # SNI-IV (§2.2): everything dropped, the ClientHello included: curl times out.
    assert by["rutracker"].outcomes == {"timeout": 2}
    # SNI-II (§2.2): 5-8 more packets pass, then drops: a tiny page may still load, a 64 KB
    # transfer never does.
    assert set(by["google"].outcomes) <= {"timeout", "ok"}
    assert by["google"].broken or by["google"].degraded
    for name in ("gmail", "bystander", "yandex"):
        assert not by[name].broken, f"{name} shares a cloud but not a name: it must pass"
    assert sni_run.summary.collateral_damage == 0.0
    resets = [r for r in read_results(sni_run.run_dir / "results.jsonl")
              if r.get("service") == "twitter"]  # fmt: skip
    assert all(r["time_total_s"] < 1.0 for r in resets), "a reset is immediate, not a timeout"


def test_verdicts_decided_on_the_client_hello(sni_run) -> None:  # type: ignore[no-untyped-def]
    events = read_results(sni_run.run_dir / "controller-events.jsonl")
    tls = {e["sni"]: e for e in events if e.get("event") == "verdict" and e["protocol"] == "tls"}
    assert tls["twitter.com"]["verdict"]["action"] == "reset"
    assert tls["www.google.com"]["verdict"]["action"] == "drop-after"
    assert 5 <= tls["www.google.com"]["verdict"]["after_packets"] <= 8
    assert tls["rutracker.org"]["verdict"]["action"] == "drop"
    assert tls["yandex.ru"]["verdict"]["action"] == "allow"
    # SYN, ACK, ClientHello climb (the SYN/ACK is forwarded without a copy): the third decides.
    assert all(e["packet_ins"] == 3 for e in tls.values())


def test_after_the_verdict_the_switch_carries_the_flow(sni_run) -> None:  # type: ignore[no-untyped-def]
    extra = sni_run.summary.extra
    bulk = extra["bulk"]
    assert bulk["ok"] and bulk["bytes"] == 32 * 1024 * 1024
    packets = bulk["tspu_port_delta"]["1"]["tx_packets"]
    assert packets > 20_000
    # Every packet-in of the whole run is a first packet of some flow (a handful per flow).
    stats = extra["controller_stats"]
    verdicts = extra["controller_events"]["verdict"]
    assert stats["packet_ins"] < 12 * verdicts
    assert stats["packet_ins"] < packets / 50


def test_live_verdicts_equal_replay_of_the_capture(sni_run) -> None:  # type: ignore[no-untyped-def]
    report = compare_run(sni_run.run_dir)
    assert report.ok, report.to_json()
    assert report.compared >= 13 and report.agree == report.compared


def test_teardown_removed_nft_and_everything(sni_run) -> None:  # type: ignore[no-untyped-def]
    assert leftovers(sni_run.run_dir) == []
