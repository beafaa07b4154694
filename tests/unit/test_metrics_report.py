"""The campaign report from a run directory, and the single-step report still working."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

from rich.console import Console

from tests.unit.test_metrics_fixture import CAMPAIGN_EXPECT, write_campaign
from tspulab.metrics import plots
from tspulab.metrics.report import print_summary, write_report
from tspulab.metrics.summary import ServiceSpec, summarise
from tspulab.metrics.timeline import build_timeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_campaign_report_is_self_contained_with_figures_tables_and_verdicts(tmp_path: Path) -> None:
    run = write_campaign(tmp_path / "run")
    rep = write_report(run, CAMPAIGN_EXPECT)
    page = rep.path.read_text(encoding="utf-8")
    images = _images(page)
    assert len(images) == 4 and all(i.startswith(PNG_MAGIC) for i in images)
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened
    for heading in ("Expectations", "Registry: blocked addresses over time",
                    "Targets and collateral damage over time", "Reachability per service",
                    "Figures per step", "Circumvention", "Throughput and time to first byte",
                    "Timeline", "Environment"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page
    assert "<b>6 of 8</b> expectations passed" in page
    assert "15,700,000 (97)" in page  # blocked addresses (prefixes) at the last step
    assert "not available on this kernel" in page and "netdev (userspace)" in page
    assert "youtube (" in page and "kbit/s)" in page  # degraded with its goodput
    assert [r.passed for r in rep.expectations] == [
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
    ]
    assert rep.junit is not None and "<testsuite " in rep.junit.read_text(encoding="utf-8")


def test_expectations_default_to_run_json_and_no_junit_without_any(tmp_path: Path) -> None:
    run = write_campaign(tmp_path / "run")
    rep = write_report(run)
    assert rep.expectations == [] and rep.junit is None and not (run / "junit.xml").exists()
    meta = json.loads((run / "run.json").read_text())
    meta["expect"] = CAMPAIGN_EXPECT[:2]
    (run / "run.json").write_text(json.dumps(meta))
    rep = write_report(run)
    assert len(rep.expectations) == 2 and (run / "junit.xml").exists()


def test_partial_and_empty_runs_still_get_a_page(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    page = write_report(empty, [{"service": "x", "state": "blocked"}]).path.read_text()
    assert _images(page) == [] and "not measured in this run" in page
    assert "cannot evaluate" in page
    run = write_campaign(tmp_path / "run")
    with (run / "results.jsonl").open("a") as f:
        f.write('{"kind": "https", "service": "tele')  # killed mid-write
    assert len(_images(write_report(run).path.read_text())) == 4


def test_plots_return_none_without_data() -> None:
    tl = build_timeline([], [ServiceSpec("a", "target", 1, "1.1.1.1", "c")])
    assert plots.blocked_addresses_png(tl) is None
    assert plots.damage_png(tl) is None
    assert plots.heatmap_png(tl) is None
    assert plots.performance_png(tl) is None
    assert plots.rate(417) == "417 kbit/s" and plots.rate(53_000) == "53 Mbit/s"


def test_campaign_without_clock_start_uses_days(tmp_path: Path) -> None:
    run = write_campaign(tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    meta["clock_start"], meta["clock_speed"] = None, 1
    (run / "run.json").write_text(json.dumps(meta))
    page = write_report(run).path.read_text()
    assert "scenario time since the run's start" in page and "+3d" in page
    assert len(_images(page)) == 4


def test_one_step_run_shows_its_services_and_terminal_summary(tmp_path: Path) -> None:
    """A single-ISP run without a timeline is a campaign of one step: the same page, with the
    whole run's services from summary.json, and the terminal summary."""
    services = [ServiceSpec("tg", "target", 1, "149.154.167.99", "telegram"),
                ServiceSpec("viber", "innocent", 40, "18.197.25.40", "aws")]  # fmt: skip
    results = [{"kind": "https", "service": "tg", "role": "target", "ok": False, "outcome": "timeout"},
               {"kind": "https", "service": "viber", "role": "innocent", "ok": True, "outcome": "ok"}]  # fmt: skip
    summary = summarise("demo", services, results, blocked_addresses=140_544, registry_prefixes=7,
                        in_registry={"149.154.167.99"})  # fmt: skip
    run = write_campaign(tmp_path / "run")
    (run / "summary.json").write_text(json.dumps(summary.to_json()))
    page = write_report(run).path.read_text()
    assert "Services over the whole run" in page
    assert "<td>tg</td><td>target</td>" in page and "broken" in page and "reachable" in page
    out = io.StringIO()
    print_summary(summary, tmp_path, Console(file=out, width=200))
    assert "intended blocking 100.0 %" in out.getvalue()


def test_a_run_json_that_breaks_its_contract_is_named_not_fatal(tmp_path: Path) -> None:
    run = write_campaign(tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    del meta["isps"][0]["name"]
    meta["probes"] = "fast"
    (run / "run.json").write_text(json.dumps(meta))
    page = write_report(run).path.read_text()
    assert "run.json did not match its contract" in page
    assert (
        "isps[0].name: Field required" in page
        and "probes: Input should be a valid dictionary" in page
    )


def test_degraded_threshold_comes_from_run_json(tmp_path: Path) -> None:
    """The runner writes `probes` into run.json (the report once read a key nobody wrote)."""
    run = write_campaign(tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    meta["probes"]["degraded_below_kbps"] = 1.0  # nothing is slow enough to be degraded now
    (run / "run.json").write_text(json.dumps(meta))
    results = {r.name: r for r in write_report(run, CAMPAIGN_EXPECT).expectations}
    degraded = next(r for name, r in results.items() if "degraded" in name)
    assert not degraded.passed


def test_environment_notes_from_summary_json(tmp_path: Path) -> None:
    run = write_campaign(tmp_path / "run")
    (run / "summary.json").write_text(
        json.dumps({"lateness_s": 2.345, "lab_timings_s": {"up": 0.9}})
    )
    page = write_report(run).path.read_text()
    assert "behind its scenario clock by at most 2.3 real seconds" in page and "up 0.9 s" in page
