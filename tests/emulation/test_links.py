"""A scenario with `links:` on a kernel without netem: refused before bring-up, or run without
delays with `--no-delays`, and run.json says which (docs/scenario.md, "Links").

Where netem exists (the VM of docs/vm.md) tests/vm/ checks the delays themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab import cli
from tspulab.lab.linkshape import netem_supported
from tspulab.scenario.runner import run_scenario
from tspulab.scenario.schema import load_scenario_text

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "demo.yaml"
LINKS = "\nlinks:\n  access: dsl\n  classes:\n    foreign: {delay: 45ms}\n"

needs_no_netem = pytest.mark.skipif(
    netem_supported(), reason="this kernel has netem: nothing is refused (tests/vm/ checks delays)"
)


def _with_links(tmp_path: Path) -> Path:
    path = tmp_path / "demo-links.yaml"
    # data: paths resolve against the data folder, so the copy may live anywhere.
    path.write_text(DEMO.read_text(encoding="utf-8") + LINKS, encoding="utf-8")
    return path


@needs_no_netem
def test_run_refuses_delays_it_cannot_emulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _with_links(tmp_path)
    assert cli.main(["run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "no netem" in err and "--no-delays" in err and str(path) in err
    assert not (tmp_path / "runs").exists(), "refused before anything was made"


@needs_no_netem
def test_no_delays_runs_and_says_so(tmp_path: Path) -> None:
    path = _with_links(tmp_path)
    scenario = load_scenario_text(path.read_text(encoding="utf-8"), path)
    outcome = in_sandbox(run_scenario, scenario, tmp_path / "runs", bulk_transfer=False,
                         log=silent, no_delays=True)  # fmt: skip
    meta = json.loads((outcome.run_dir / "run.json").read_text())
    assert meta["netem"] is False
    delays = meta["delays"]
    assert delays["applied"] is False and delays["why"] == "--no-delays"
    # What would have been applied is still listed: 2 subscribers (dsl), the router, 4 clouds and
    # the resolver.
    classes = sorted(link["class"] for link in delays["links"])
    assert classes == ["domestic", "domestic", "dsl", "dsl", "exchange", "foreign", "foreign",
                       "foreign"]  # fmt: skip
    assert outcome.summary.extra["environment"]["delays"]["why"] == "--no-delays"
    assert not (outcome.run_dir / "netem").exists()
    # The report's Environment note says it too.
    assert "link delays not applied: --no-delays" in (outcome.run_dir / "report.html").read_text()
    by = {s.name: s for s in outcome.summary.services}
    assert not by["yandex"].broken
    assert leftovers(outcome.run_dir) == []
