"""`tspulab strategies --lab`: --hops is checked before anything starts, and --labs shares every
strategy of every profile out to exactly one lab (the labs themselves are stubbed here; the real
ones run in tests/emulation/strategies/test_lab_strategies.py and test_hops.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tspulab.cli import main
from tspulab.strategies import command, labsweep
from tspulab.strategies.bench import Trial
from tspulab.strategies.sweep import StrategyResult
from tspulab.strategies.verdicts import Judgement


@pytest.mark.parametrize(
    ("hops", "message"),
    [
        ("3,2", "--hops: TSPU hop 3 is not in 0..2 (the border)"),
        ("2", "--hops: '2' is not TSPU,BORDER"),
        ("a,b", "--hops: 'a,b' is not TSPU,BORDER"),
        ("0,17", "--hops: border hop 17 is not in 1..16"),
    ],
)
def test_bad_hops_are_refused_before_a_lab_starts(
    hops: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["strategies", "--lab", "--profile", "tspu-2022", "--hops", hops, "--out", str(tmp_path)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_labs_share_out_every_strategy_once_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[str, ...], bool, tuple[int, int] | None]] = []
    lock = threading.Lock()

    def fake_run_lab(
        profile: str, target: str, specs: Sequence[str], trials: int, runs_dir: Path,
        control: bool = True, hops: tuple[int, int] | None = None,
    ) -> list[StrategyResult]:  # fmt: skip
        with lock:
            calls.append((profile, tuple(specs), control, hops))
        time.sleep(0.05 if control else 0.0)  # the lab with the control finishes last
        names = ["none"] * control + list(specs)
        return [
            StrategyResult(s, [Trial(True, 0.01, "ok", 0.0)] * trials,
                           {profile: [Judgement(True, "allow", None, "", {})] * trials}, 0.1)
            for s in names
        ]  # fmt: skip

    monkeypatch.setattr(labsweep, "run_lab", fake_run_lab)
    specs = [f"split:{n}" for n in range(1, 8)]
    merged: dict[str, StrategyResult] = {}
    command._lab_round(merged, ["tspu-2022"], "t.example", specs, 1, Path("x"), True, 3, (1, 2))
    assert len(calls) == 3 and all(c[3] == (1, 2) for c in calls)
    assert sorted(s for c in calls for s in c[1]) == sorted(specs)
    assert [c[2] for c in calls].count(True) == 1  # the control runs once
    assert list(merged) == ["none", *specs]  # the specs' order, not the labs' finishing order
    calls.clear()
    merged.clear()
    command._lab_round(merged, ["a", "b", "c"], "t.example", specs, 1, Path("x"), False, 2, None)
    assert sorted(c[0] for c in calls) == ["a", "b", "c"]  # one lab per profile
    assert all(sorted(c[1]) == sorted(specs) and not c[2] for c in calls)
    assert all(set(r.judged) == {"a", "b", "c"} for r in merged.values())
