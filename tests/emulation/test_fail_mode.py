"""When the TSPU controller dies: fail-closed (new flows go nowhere) or fail-open (a bypass that
forwards everything, as a real DPI with a bypass switch would)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "tspu-2022-sni.yaml"


def _kill_controller(live: LiveLab) -> None:
    proc = live.lab.controller.proc
    assert proc is not None
    proc.kill()
    proc.wait()


def _fail_closed(tmp_path: Path) -> Path:
    with LiveLab(load_scenario(SCENARIO), tmp_path, fail_mode="closed", log=silent) as live:
        assert live.probe("sub1", "yandex").ok
        _kill_controller(live)
        time.sleep(4)
        # A new flow (the DNS query first) needs the controller's verdict: none comes.
        assert live.probe("sub1", "yandex", timeout_s=3).outcome in ("timeout", "dns-failure")
        assert not live.probe("sub1", "rutracker", timeout_s=3).ok
    return live.run_dir


def test_fail_closed(tmp_path: Path) -> None:
    assert leftovers(in_sandbox(_fail_closed, tmp_path)) == []


def _fail_open(tmp_path: Path) -> Path:
    with LiveLab(load_scenario(SCENARIO), tmp_path, fail_mode="open", log=silent) as live:
        assert not live.probe("sub1", "rutracker", timeout_s=3).ok
        _kill_controller(live)
        deadline = time.monotonic() + 20
        bypassed = False
        while time.monotonic() < deadline and not bypassed:
            time.sleep(1)
            bypassed = live.probe("sub1", "rutracker", timeout_s=2, record=False).ok
        assert bypassed, "standalone mode should take over within three 1 s inactivity probes"
        assert live.probe("sub1", "yandex").ok
        assert live.probe("sub1", "twitter").ok, "SNI-I is gone with the controller too"
    return live.run_dir


def test_fail_open(tmp_path: Path) -> None:
    assert leftovers(in_sandbox(_fail_open, tmp_path)) == []
