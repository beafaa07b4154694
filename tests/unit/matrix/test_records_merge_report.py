"""Results files written and read by one module; shards merged into one report (HTML, JUnit)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from tspulab.cli import main
from tspulab.matrix.catalogue import settings_json
from tspulab.matrix.merge import merge_records, write_records
from tspulab.matrix.outcomes import load_outcomes
from tspulab.matrix.plan import Shard, all_cells
from tspulab.matrix.records import (
    Footer,
    Header,
    LabRecord,
    MatrixSpec,
    ResultsError,
    ResultsWriter,
    TrialRecord,
    VerdictRecord,
    read_results,
)
from tspulab.matrix.report import build_report, format_table, render_html

SPEC = MatrixSpec(
    methods=("direct", "wireguard", "trojan"),
    profiles=("tspu-2022", "vpn-protocols-2023"),
    trials=2,
    transfer_bytes=65536,
    timeout_s=15.0,
)
#: What a lab would measure: WireGuard dropped under vpn-protocols-2023, direct blocked
#: everywhere, trojan through everywhere.
OK = {("wireguard", "tspu-2022"), ("trojan", "tspu-2022"), ("trojan", "vpn-protocols-2023")}


def write_shard(out: Path, shard: Shard, spec: MatrixSpec = SPEC, ok: set = OK) -> Path:  # type: ignore[type-arg]
    cells = shard.take(all_cells(spec.methods, spec.profiles))
    path = out / f"shard-{shard.index}" / "matrix.jsonl"
    w = ResultsWriter(path)
    w.write(
        Header(
            spec=spec,
            shard=str(shard),
            cells=tuple(c.key() for c in cells),
            jobs=1,
            concurrency=4,
            started=1e9 + shard.index,
            host=f"node{shard.index}",
            catalogue=tuple(settings_json()),
        )
    )
    for c in cells:
        for t in range(1, spec.trials + 1):
            good = (c.method, c.profile) in ok
            w.write(
                TrialRecord(
                    method=c.method,
                    profile=c.profile,
                    trial=t,
                    lab="lab1",
                    ok=good,
                    outcome="ok" if good else "timeout",
                    ttfb_s=0.03 if good else None,
                    goodput_bps=5e7 if good else None,
                    started=1e9,
                )
            )
        actions = {"vpn-protocols:drop": 1} if c == ("wireguard", "vpn-protocols-2023") else {}
        w.write(
            VerdictRecord(
                method=c.method, profile=c.profile, lab="lab1", protocols={"x": 1}, actions=actions
            )
        )
    w.write(
        LabRecord(lab="lab1", methods=(), profiles=(), started=1e9, bringup_s=20.0, wall_s=60.0)
    )
    w.write(Footer(finished=1e9 + 60, wall_s=60.0 + shard.index, labs=1))
    return path


def test_records_round_trip(tmp_path: Path) -> None:
    path = write_shard(tmp_path, Shard(1, 1))
    records = read_results(path)
    assert isinstance(records[0], Header) and records[0].spec == SPEC
    assert sum(isinstance(r, TrialRecord) for r in records) == 12
    assert isinstance(records[-1], Footer)


def test_a_bad_line_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = write_shard(tmp_path, Shard(1, 1))
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"ok":false', '"ok":"maybe"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=rf"{path}:2: trial.ok: "):
        read_results(path)
    path.write_text("{not json\n")
    with pytest.raises(ResultsError, match=rf"{path}:1: not JSON"):
        read_results(path)
    path.write_text(lines[2] + "\n")
    with pytest.raises(ResultsError, match="starts with its header"):
        read_results(path)


def test_three_shards_merge_into_the_whole_matrix(tmp_path: Path) -> None:
    paths = [write_shard(tmp_path, Shard(i, 3)) for i in (1, 2, 3)]
    merged = merge_records(paths)
    header = merged[0]
    assert isinstance(header, Header)
    assert header.cells == tuple(c.key() for c in all_cells(SPEC.methods, SPEC.profiles))
    assert header.shard == "1/3,2/3,3/3" and header.host == "node1,node2,node3"
    report = build_report(merged, load_outcomes())
    assert report.absent == 0 and not report.unmeasured
    # Records: WireGuard fails under vpn-protocols-2023 (agrees), works under tspu-2022 (agrees:
    # no fingerprint there), trojan works under tspu-2022 (agrees); direct has no record.
    assert report.cell("wireguard", "vpn-protocols-2023").agreement == "agree"  # type: ignore[union-attr]
    assert report.cell("wireguard", "tspu-2022").agreement == "agree"  # type: ignore[union-attr]
    assert report.cell("direct", "tspu-2022").agreement == "no-record"  # type: ignore[union-attr]
    assert not report.disagreements
    assert report.wall_s == 63.0
    # The merged file is a results file like any other: it reads and merges again.
    out = write_records(merged, tmp_path / "merged" / "matrix.jsonl")
    assert merge_records([out])[1:] == merged[1:]


def test_a_disagreement_is_flagged_in_every_output(tmp_path: Path) -> None:
    ok = OK | {("wireguard", "vpn-protocols-2023")}  # the lab lets WireGuard through
    path = write_shard(tmp_path, Shard(1, 1), ok=ok)
    report = build_report(read_results(path), load_outcomes())
    (dis,) = report.disagreements
    assert dis.cell.key() == "wireguard@vpn-protocols-2023" and dis.record is not None
    assert dis.record.id == "plain-vpn-protocol-block"
    assert "2/2 [34-100]!" in format_table(report)
    page = render_html(report, load_outcomes())
    assert page.count('class="cell works disagree"') == 1
    assert "N4P-#76, N4P-#274" in page and 'id="disagreements"' in page

    class Cells(HTMLParser):
        classes: ClassVar[list[str]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "td" and "cell" in (dict(attrs).get("class") or "").split():
                self.classes.append(dict(attrs)["class"] or "")

    parser = Cells()
    parser.feed(page)  # the page parses, with one cell per method and profile
    assert len(parser.classes) == 6 and sum("disagree" in c for c in parser.classes) == 1


def test_merge_refuses_shards_of_different_matrices_and_overlaps(tmp_path: Path) -> None:
    a = write_shard(tmp_path / "a", Shard(1, 2))
    other = SPEC.model_copy(update={"trials": 3})
    b = write_shard(tmp_path / "b", Shard(2, 2), spec=other)
    with pytest.raises(ResultsError, match="not a shard of the matrix"):
        merge_records([a, b])
    c = write_shard(tmp_path / "c", Shard(1, 1))
    with pytest.raises(ResultsError, match="cell direct@tspu-2022 is also in"):
        merge_records([a, c])


def test_merge_command_writes_the_reports_and_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = [write_shard(tmp_path, Shard(i, 3)) for i in (1, 3)]
    code = main(["merge", *map(str, (s.parent for s in shards)), "--out", str(tmp_path / "m")])
    assert code == 0  # a missing shard is not an error: its cells are absent, and said so
    out = capsys.readouterr().out
    assert "0 disagreement(s)" in out
    page = (tmp_path / "m" / "report.html").read_text()
    assert "2 cell(s) of the matrix are in none of these shards" in page
    suite = ET.parse(tmp_path / "m" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "0"
    assert main(["merge", str(shards[0]), "--out", str(tmp_path / "m")]) == 2  # exists


def test_junit_has_a_failure_per_disagreement(tmp_path: Path) -> None:
    write_shard(tmp_path, Shard(1, 1), ok=OK | {("wireguard", "vpn-protocols-2023")})
    code = main(
        ["merge", str(tmp_path / "shard-1"), "--out", str(tmp_path / "m"), "--fail-on-disagreement"]
    )
    assert code == 3
    suite = ET.parse(tmp_path / "m" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failed = [c for c in suite if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [
        ("tspulab.matrix.vpn-protocols-2023", "wireguard")
    ]


def test_a_failed_lab_retries_only_its_unmeasured_cells(tmp_path: Path) -> None:
    from tspulab.matrix.plan import LabUnit
    from tspulab.matrix.runner import unmeasured

    path = write_shard(tmp_path, Shard(1, 2))  # direct and wireguard@tspu-2022 measured
    unit = LabUnit("lab1", tuple(all_cells(SPEC.methods, SPEC.profiles)))
    assert [c.key() for c in unmeasured(path, unit)] == [
        "wireguard@vpn-protocols-2023",
        "trojan@tspu-2022",
        "trojan@vpn-protocols-2023",
    ]
