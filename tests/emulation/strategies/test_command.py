"""`tspulab strategies` end to end: the bench in a run sandbox, the table and the JSON written."""

from __future__ import annotations

import json
from pathlib import Path

from tspulab.cli import main


def test_the_command_writes_the_ranked_table_and_the_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    code = main([
        "strategies", "--profile", "tspu-2022", "--diff", "tspu-2022", "tspu-2026-reassembly",
        "--only", "split:sni", "--only", "tlsrec:1", "--no-pairs", "--trials", "1",
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    data = json.loads((out / "sweep.json").read_text())
    by = {r["strategy"]: r["profiles"] for r in data["results"]}
    assert set(by) == {"none", "split:at=sni", "tlsrec:at=1"}
    assert by["none"]["tspu-2022"]["success"] == 0
    assert by["split:at=sni"]["tspu-2022"]["success"] == 1
    assert by["split:at=sni"]["tspu-2026-reassembly"]["success"] == 0
    table = (out / "table.md").read_text()
    assert "### tspu-2022 -> tspu-2026-reassembly" in table
    assert "- `split:at=sni`: 1/1 -> 0/1 (drop (sni-iv) x1)" in table
    assert list((out / "captures").glob("*.pcap"))
