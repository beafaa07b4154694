"""scenarios/telegram-2018.yaml on a real lab, in a short variant with the same structure: the
same ISPs (Dom.ru's TSPU seeing half of its subscribers), clouds, named collateral, registry
stages, proxies and OpenVPN servers and expectations, with every sixth member of the 60-site
population (10 sites) so that the run stays under two minutes.

Beside the scenario's own `expect:` items, the population's measured damage must equal what the
registry predicts for those members (data/telegram-2018/small_sites_2018.csv, blocked_at_peak):
every member the registry covers broken, every other one reachable.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.scenario.runner import RunOutcome, run_scenario
from tspulab.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "telegram-2018.yaml"
SITES_CSV = ROOT / "data" / "telegram-2018" / "small_sites_2018.csv"
EVERY = 6  # keep site-01, site-07, ...: 10 sites, 5 of them in the registry


def _kept_sites() -> list[dict[str, str]]:
    lines = [x for x in SITES_CSV.read_text().splitlines() if x[:1] != "#"]
    return list(csv.DictReader(lines))[::EVERY]


def short_variant(directory: Path) -> Path:
    """The scenario with every EVERY-th population member, written to `directory`."""
    yaml = YAML()
    data: Any = yaml.load(SCENARIO.read_text())
    kept = {s["name"] for s in _kept_sites()}
    data["services"] = [
        s for s in data["services"] if s.get("population") is None or s["name"] in kept
    ]
    used = {s["cloud"] for s in data["services"]} | {c["cloud"] for c in data["circumvention"]}
    used |= {e["move_service"]["cloud"] for e in data["timeline"] if "move_service" in e}
    data["clouds"] = [c for c in data["clouds"] if c["name"] in used]
    data["name"] = "telegram-2018-short"
    path = directory / "telegram-2018-short.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    base = tmp_path_factory.mktemp("telegram-2018")
    scenario = load_scenario(short_variant(base))
    return in_sandbox(run_scenario, scenario, base / "runs", log=silent, bulk_transfer=False)


def test_the_scenarios_expectations_hold(run: RunOutcome) -> None:
    results = run.report.expectations
    assert len(results) == len(load_scenario(SCENARIO).expect)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_population_damage_is_what_the_registry_predicts(run: RunOutcome) -> None:
    tl = run.report.timeline
    peak = tl.step("reported peak")
    assert peak is not None
    sites = _kept_sites()
    predicted = sum(s["blocked_at_peak"] == "yes" for s in sites)
    assert 0 < predicted < len(sites), "the kept members include blocked and unblocked sites"
    rt = tl.point(peak, "rostelecom")
    dom = tl.point(peak, "dom-ru")
    assert rt is not None and dom is not None
    fig = rt.subscribers.population("small-sites")
    assert fig is not None and (fig.broken, fig.n) == (predicted, len(sites))
    # Dom.ru: the subscriber behind its TSPU loses them, the other one does not.
    assert dom.metric("population_damage") == pytest.approx(predicted / len(sites) / 2)
    assert dom.metric("intended_blocking") == 0.0, "the binary view hides Dom.ru's half"
    assert dom.metric("intended_blocking_subscribers") == 0.5


def test_summary_json_carries_the_population_with_its_interval(run: RunOutcome) -> None:
    summary = json.loads((run.run_dir / "summary.json").read_text())
    members = [s for s in summary["services"] if s["name"].startswith("site-")]
    assert len(members) == len(_kept_sites())
    assert all(s["population"] == "small-sites" for s in members)
    pop = summary["populations"]["small-sites"]
    assert pop["pooled"]["n"] == len(members)
    assert set(pop["per_subscriber"]) == {"rostelecom", "mts", "dom-ru"}
    every = pop["all_subscribers"]
    low, high = every["wilson_95"]
    assert 0 <= low <= every["share"] <= high <= 1 and every["n"] == len(members)


def test_report_shows_the_population_and_no_empty_chart(run: RunOutcome) -> None:
    page = run.report.path.read_text()
    assert "Collateral damage in populations" in page and "Assumptions:" in page
    assert "no transfer probe ran" in page  # said in words, not drawn as an empty panel
    assert leftovers(run.run_dir) == []
