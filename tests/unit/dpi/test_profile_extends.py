"""``extends:`` in profile files (tspulab/dpi/profile_extends.py): merge rules and where errors
point (the file and line that wrote the value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.dpi.profile import PROFILES_DIR, ProfileError, load_profile, load_profile_text

CHILD = """\
extends: {base}
name: child
title: a child profile
facts:
  - fact: one more fact
    source: "§10.2"
{extra}"""


def child(tmp_path: Path, base: str = "tspu-2026-reassembly", extra: str = "") -> Path:
    path = tmp_path / "child.yaml"
    path.write_text(CHILD.format(base=base, extra=extra))
    return path


def line_of(path: Path, text: str) -> int:
    return 1 + path.read_text()[: path.read_text().index(text)].count("\n")


def test_the_shipped_desync_profile_is_the_reassembly_profile_plus_its_own_keys() -> None:
    desync, base = load_profile("tspu-2026-desync").spec, load_profile("tspu-2026-reassembly").spec
    for part in ("seed", "inspection", "state", "sets", "rules", "period"):
        assert getattr(desync, part) == getattr(base, part), part
    assert desync.facts[: len(base.facts)] == base.facts  # the base's, then its own
    assert len(desync.facts) == len(base.facts) + 2
    assert desync.not_modelled[-1].fact.startswith("Which mark the box reads")
    assert desync.desync is not None and base.desync is None
    assert desync.source != base.source and desync.name == "tspu-2026-desync"


def test_a_key_the_file_gives_replaces_the_bases(tmp_path: Path) -> None:
    extra = 'seed: {value: 7, source: "§8"}\n'
    spec = load_profile(child(tmp_path, extra=extra)).spec
    base = load_profile("tspu-2026-reassembly").spec
    assert spec.seed.value == 7 and spec.rules == base.rules
    assert spec.facts[-1].fact == "one more fact"


def test_a_relative_path_is_read_beside_the_extending_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text((PROFILES_DIR / "ech-2024.yaml").read_text())
    spec = load_profile(child(tmp_path, base="base.yaml")).spec
    assert spec.rules == load_profile("ech-2024").spec.rules


def test_an_error_in_the_files_own_key_points_at_its_line(tmp_path: Path) -> None:
    path = child(tmp_path, extra='seed: {value: 7, source: "§99"}\n')
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert f"child.yaml:{line_of(path, 'seed:')}:" in str(err.value)
    assert "seed.source" in str(err.value) and "§99" in str(err.value)


def test_an_error_in_an_inherited_value_points_at_the_base(tmp_path: Path) -> None:
    base_text = (PROFILES_DIR / "ech-2024.yaml").read_text()
    bad = base_text.replace("budget_packets: {value: 20,", "budget_packets: {value: [30, 2],")
    (tmp_path / "base.yaml").write_text(bad)
    with pytest.raises(ProfileError) as err:
        load_profile(child(tmp_path, base="base.yaml"))
    line = line_of(tmp_path / "base.yaml", "budget_packets")
    assert f"base.yaml:{line}:" in str(err.value), str(err.value)
    assert "inspection.budget_packets" in str(err.value)


def test_a_cross_check_between_own_and_inherited_keys_names_the_right_file(tmp_path: Path) -> None:
    """The file's own rule refers to a set only the base could have: the error is the file's."""
    extra = """\
rules:
  - id: r
    title: r
    source: "§2.2"
    when: {server_in: no-such-set}
    action: {kind: drop}
"""
    path = child(tmp_path, extra=extra)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert f"child.yaml:{line_of(path, 'server_in')}:" in str(err.value)
    assert "rules[0].when.server_in: unknown set 'no-such-set'" in str(err.value)


def test_an_inherited_fact_error_points_at_the_base_and_an_own_one_at_the_file(
    tmp_path: Path,
) -> None:
    base_text = (PROFILES_DIR / "ech-2024.yaml").read_text()
    (tmp_path / "base.yaml").write_text(base_text)
    path = tmp_path / "child.yaml"
    path.write_text(
        CHILD.format(base="base.yaml", extra="").replace('source: "§10.2"', 'source: "§42"')
    )
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    n = len(load_profile("ech-2024").spec.facts)
    own = line_of(path, '"§42"')
    assert f"child.yaml:{own}:" in str(err.value)
    assert f"facts[{n}].source" not in str(err.value)  # renumbered to the file's own list
    assert "facts[0].source" in str(err.value)


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("tspu-2026-reassembli", "unknown profile 'tspu-2026-reassembli'; did you mean"),
        ("child.yaml", "child.yaml: a cycle of extends"),
    ],
)
def test_bad_references(tmp_path: Path, base: str, message: str) -> None:
    path = child(tmp_path, base=base)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert f"child.yaml:1:1: extends: {message}" in str(err.value)


def test_a_longer_cycle_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CHILD.format(base="b.yaml", extra=""))
    (tmp_path / "b.yaml").write_text(CHILD.format(base="a.yaml", extra=""))
    with pytest.raises(ProfileError, match="a cycle of extends"):
        load_profile(tmp_path / "a.yaml")


def test_the_extending_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "child.yaml"
    path.write_text("extends: ech-2024\ntitle: x\n")
    with pytest.raises(ProfileError, match="an extending profile gives its own 'name'"):
        load_profile(path)


def test_text_without_a_path_extends_a_packaged_profile() -> None:
    profile = load_profile_text(CHILD.format(base="ech-2024", extra=""), "inline.yaml")
    assert profile.rules == load_profile("ech-2024").rules and profile.name == "child"
