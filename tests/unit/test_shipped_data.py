"""A plain clone is self-contained: every `data:` path a scenario names ships in `data/`, every
shipped data file is listed in `data/README.md`'s provenance table, and nothing points at a folder
beside the clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.datapaths import NDPI
from tspulab.scenario.paths import SHIPPED_DATA

REPO = Path(__file__).resolve().parents[2]
DATA_REF = re.compile(r"data:([\w./-]+)")


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [
        REPO / f
        for f in out
        if f.endswith((".py", ".yaml", ".md", ".toml", ".sh", ".cfg"))
        or f in ("Makefile", "Vagrantfile")
    ]


@pytest.mark.parametrize("scenario", sorted((REPO / "scenarios").rglob("*.yaml")), ids=str)
def test_every_data_path_of_a_scenario_ships(scenario: Path) -> None:
    for rel in DATA_REF.findall(scenario.read_text()):
        assert (SHIPPED_DATA / rel).exists(), f"{scenario.name}: data:{rel} not in data/"


def test_every_shipped_data_folder_has_provenance() -> None:
    readme = (SHIPPED_DATA / "README.md").read_text()
    for folder in sorted(p for p in SHIPPED_DATA.iterdir() if p.is_dir()):
        assert f"`{folder.name}/" in readme, f"data/{folder.name} has no row in data/README.md"
    assert (NDPI / "COPYING.LGPL-3.0").is_file() and (NDPI / "INDEX.tsv").is_file()
    assert len(list((NDPI / "pcap").glob("*.pcap*"))) == 51


def test_nothing_points_beside_the_clone() -> None:
    beside = re.compile(r"\.\./shared|/work/shared|parents\[\d\]\.parent / \"shared\"")
    offenders = [
        str(path.relative_to(REPO))
        for path in _tracked_text_files()
        if path.name != "test_shipped_data.py" and beside.search(path.read_text(errors="replace"))
    ]
    assert offenders == []
