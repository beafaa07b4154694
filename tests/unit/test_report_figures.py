"""The report never draws an empty chart: every panel of every figure carries data, and a figure
the run has nothing for is left out with a sentence saying why (the Telegram-2018 report drew an
empty goodput panel when no transfer probe ran)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_metrics_fixture import CAMPAIGN_EXPECT, campaign_records, write_campaign
from tspulab.metrics import plots
from tspulab.metrics.report import write_report
from tspulab.metrics.timeline import build_timeline, services_from_meta

FIGURES = ("blocked_addresses_png", "damage_png", "heatmap_png", "performance_png")


def _panels_with_data(fig: Any) -> list[bool]:
    """For each plotting panel of a figure (colour bars aside): whether it shows any data."""
    out = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        drawn = any(len(line.get_xdata()) for line in ax.get_lines() if line.get_label()[:1] != "_")
        drawn |= bool(ax.images) or any(len(c.get_offsets()) for c in ax.collections)
        out.append(drawn)
    return out


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """Figure name -> panels with data, recorded as each figure is saved."""
    seen: dict[str, list[bool]] = {}
    real = plots._png
    current: list[str] = []

    def capture(fig: Any) -> bytes:
        seen[current[-1]] = _panels_with_data(fig)
        return real(fig)

    monkeypatch.setattr(plots, "_png", capture)
    for name in FIGURES:
        fn = getattr(plots, name)

        def wrapped(tl: Any, *a: Any, _fn: Any = fn, _name: str = name, **kw: Any) -> Any:
            current.append(_name)
            return _fn(tl, *a, **kw)

        monkeypatch.setattr(plots, name, wrapped)
        monkeypatch.setattr(f"tspulab.metrics.run_page.{name}", wrapped)
    return seen


def _write(run_dir: Path, records: list[dict[str, Any]]) -> Path:
    write_campaign(run_dir)
    with (run_dir / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return run_dir


def test_every_panel_of_the_full_campaign_has_data(
    tmp_path: Path, drawn: dict[str, list[bool]]
) -> None:
    write_report(write_campaign(tmp_path / "run"), CAMPAIGN_EXPECT)
    assert set(drawn) == set(FIGURES)
    assert all(all(panels) and panels for panels in drawn.values()), drawn
    assert len(drawn["performance_png"]) == 2  # goodput and TTFB


def test_no_transfer_probe_means_no_goodput_panel_and_a_reason(
    tmp_path: Path, drawn: dict[str, list[bool]]
) -> None:
    records = [r for r in campaign_records() if r.get("kind") != "transfer"]
    report = write_report(_write(tmp_path / "run", records), CAMPAIGN_EXPECT)
    assert drawn["performance_png"] == [True]  # TTFB only
    goodput, ttfb = plots.performance_data(report.timeline)
    assert not goodput and ttfb
    page = report.path.read_text(encoding="utf-8")
    assert "no transfer probe ran" in page
    assert all(all(panels) for panels in drawn.values()), drawn


def test_nothing_reachable_means_no_performance_figure_at_all(
    tmp_path: Path, drawn: dict[str, list[bool]]
) -> None:
    records = [
        {**r, "ok": False, "time_starttransfer_s": None}
        for r in campaign_records()
        if r.get("kind") != "transfer"
    ]
    report = write_report(_write(tmp_path / "run", records), CAMPAIGN_EXPECT)
    assert "performance_png" not in drawn
    page = report.path.read_text(encoding="utf-8")
    assert "No chart: no transfer probe ran" in page
    assert all(all(panels) for panels in drawn.values()), drawn


def test_performance_data_drops_failed_transfers() -> None:
    meta_services = services_from_meta(
        {"services": [{"name": "a", "role": "innocent"}, {"name": "b", "role": "target"}]}
    )
    base = {"isp": "x", "method": "direct", "step": "start", "round": 1, "subscriber": "x-1"}
    records = [
        {**base, "kind": "transfer", "service": "a", "ok": False, "scenario_t_s": 0.0},
        {**base, "kind": "https", "service": "b", "ok": False, "scenario_t_s": 0.0},
    ]
    tl = build_timeline(records, meta_services)
    assert plots.performance_data(tl) == ({}, {})
    assert plots.performance_png(tl) is None
