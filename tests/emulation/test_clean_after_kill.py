"""After a SIGKILL of the runner, `tspulab clean` removes exactly what the run made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.emulation.helpers import leftovers, mininet_namespaces_gone
from tspulab.lab.record import RunRecord
from tspulab.metrics.results import read_results

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def test_sigkill_then_clean(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tspulab.cli", "run", str(DEMO), "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        results: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(results) < 2:
            time.sleep(0.5)
            found = list(runs.glob("*/results.jsonl"))
            results = read_results(found[0]) if found else []
        assert len(results) >= 2, "the run never produced a measurement"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    run_dir = next(runs.iterdir())
    assert leftovers(run_dir), "a killed run should have left its lab up"
    assert not RunRecord(run_dir).is_clean()
    out = subprocess.run(
        [sys.executable, "-m", "tspulab.cli", "clean", "--runs-dir", str(runs)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "removed" in out
    assert leftovers(run_dir) == []
    assert mininet_namespaces_gone(run_dir)
    # Measurements taken before the kill survive it.
    assert len(read_results(run_dir / "results.jsonl")) >= 2
