"""Strategies against the OVS lab's TSPU (tspulab strategies --lab): the real controller and
switch, in a run sandbox. §2.2 SNI-I (OONI-22) for the control; §6 split row (CP-TSPU §2.5)."""

from __future__ import annotations

from pathlib import Path

from tspulab.strategies.labsweep import run_lab


def test_the_lab_tspu_resets_the_control_and_passes_a_split_hello(tmp_path: Path) -> None:
    results = {
        r.strategy: r for r in run_lab("tspu-2022", "twitter.com", ["split:sni"], 2, tmp_path)
    }
    control, split = results["none"], results["split:at=sni"]
    assert control.success_count("tspu-2022") == 0
    assert all("errno=104" in t.detail for t in control.trials)  # the SNI-I reset
    assert [j.rule for j in control.judged["tspu-2022"] if j] == ["sni-i", "sni-i"]
    assert split.success_count("tspu-2022") == 2, split.why("tspu-2022")
