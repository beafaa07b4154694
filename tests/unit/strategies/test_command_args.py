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


def test_a_yaml_file_is_accepted_where_a_spec_is_and_its_errors_name_the_file(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- split: {at: x}\n")
    assert (
        main(["strategies", "--profile", "tspu-2022", "--only", str(bad), "--out", str(tmp_path)])
        == 2
    )
    assert f"{bad}:1:11: strategy[0].split.at: 'x' is not a position" in capsys.readouterr().err
