"""`tspulab strategies` refuses bad input before it starts anything (no root needed)."""

from __future__ import annotations

from pathlib import Path

from tspulab.cli import main


def test_bad_specs_and_profiles_are_refused_before_anything_starts(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["strategies", "--profile", "tspu-2022", "--only", "split:x",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "split.at: 'x' is not a position" in capsys.readouterr().err
    assert main(["strategies", "--profile", "no-such-profile", "--out", str(tmp_path)]) == 2
    assert main(["strategies", "--out", str(tmp_path)]) == 2
