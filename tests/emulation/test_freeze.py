"""Foreign hosting 2025 (tspu-behaviour.md §5.8): server-to-client data of inside-initiated TCP to
hosting prefixes stops after ~16 KB, enforced by a switch meter whose burst is the allowance."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "hosting-2025.yaml"
ALLOWANCE = 16_384  # freeze_bytes of the hosting-freeze-2025 profile


def _freeze(tmp_path: Path) -> Path:
    with LiveLab(load_scenario(SCENARIO), tmp_path, log=silent) as live:
        assert live.probe("sub1", "small-shop").ok, "a small page fits in the allowance"
        frozen = live.probe("sub1", "small-shop", path="/bulk", range_bytes=262_144, timeout_s=4)
        assert frozen.outcome == "timeout", "no RST: the connection just stops (§5.8)"
        stats = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", live.tspu_switch],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        meters = re.findall(r"byte_in_count:(\d+).*?\n0: packet_count:\d+ byte_count:(\d+)", stats)
        passed = [int(total) - int(dropped) for total, dropped in meters]
        big = max(passed)
        # The meter counts frames (headers included); the profile counts payload: within 15 %.
        assert ALLOWANCE * 0.85 <= big <= ALLOWANCE * 1.15, (passed, stats)
        allowed = live.probe("sub1", "4pda", path="/bulk", range_bytes=262_144, timeout_s=4)
        assert allowed.ok, "4pda.to is on the SNI allowlist"
        assert live.probe("sub1", "yandex", path="/bulk", range_bytes=262_144).ok
    return live.run_dir


def test_hosting_transfer_freezes_after_the_allowance(tmp_path: Path) -> None:
    run_dir = in_sandbox(_freeze, tmp_path)
    assert leftovers(run_dir) == []
