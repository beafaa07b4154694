"""The pytest plugin without a lab: markers, parametrization, skips and usage errors.

Each case runs pytest in-process on a small test file (pytester) with the plugin loaded by name,
as the entry point loads it in a user's project; the live paths are in tests/emulation/plugin/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minirelay"
PLUGIN = ("-p", "no:tspulab", "-p", "tspulab.pytest_plugin")

TEST = """
import pytest

pytestmark = [pytest.mark.tspulab_scenario("lab.yaml"),
              pytest.mark.tspulab_profiles(PROFILES)]


def test_lab(tspulab_subscriber, tspulab_profile):
    assert tspulab_subscriber.gets_through("blocked", via="relay")


def test_without_a_lab(tspulab_profile):  # parametrized too, but no lab is brought up
    assert tspulab_profile in ("tspu-2022", "tspu-2026-reassembly")
"""


def _repo(pytester: pytest.Pytester, profiles: str) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    (pytester.path / "tests" / "test_minirelay.py").unlink()
    (pytester.path / "tests" / "test_x.py").write_text(TEST.replace("PROFILES", profiles))


def test_without_root_each_profile_is_skipped_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(pytester, '"tspu-2022", "tspu-2026-reassembly"')
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = pytester.runpytest_inprocess(*PLUGIN, "-rs", "tests")
    result.assert_outcomes(skipped=2, passed=2)
    result.stdout.fnmatch_lines(["*tspulab labs need root (network namespaces, Open vSwitch)*"])
    result.stdout.fnmatch_lines(["*2 skipped*"])


def test_an_unknown_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _repo(pytester, '"tspu-2022", "tspu-2099"')
    result = pytester.runpytest_inprocess(*PLUGIN, "tests")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*tspulab_profiles('tspu-2099'): unknown profile (known: *"])


def test_a_lab_without_a_scenario_says_how_to_give_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_y="def test_lab(tspulab_lab):\n    pass\n")
    result = pytester.runpytest_inprocess(*PLUGIN)
    result.stdout.fnmatch_lines(["*no scenario for the lab: add pytest.mark.tspulab_scenario*"])
    result.assert_outcomes(errors=1)
