"""JA4 sets and the ``ja4_in`` rule condition (issue 15: tspu-2026's reassembly before JA4
fingerprinting, tspu-behaviour.md §5.10 and §5.1 teleproxy #39 [A])."""

from __future__ import annotations

import pytest

from tspulab.dpi.ja4set import Ja4PatternError, Ja4Set, check_entry
from tspulab.dpi.profile import PROFILES_DIR, ProfileError, load_profile, load_profile_text

CHROME = "t13d1516h2_8daaf6152771_02713d6af862"


def test_exact_entries_and_globs_match() -> None:
    s = Ja4Set.of([CHROME.upper(), "t13d*_8daaf6152771_*", "q13d0310h3_55b375c5d22e_cd85d2d88918"])
    assert s.match(CHROME) == CHROME.lower()
    assert s.match("t13d1517h2_8daaf6152771_b1ff8ab2d16f") == "t13d*_8daaf6152771_*"
    assert s.match("t12d1516h2_8daaf6152771_02713d6af862") is None
    assert s.match(None) is None and len(s) == 3
    both = s.union(Ja4Set.of(["t13d*_8daaf6152771_*", "t1?i*"]))
    assert both.globs == ("t13d*_8daaf6152771_*", "t1?i*") and len(both) == 4


@pytest.mark.parametrize(
    "bad", ["t13d1516h2_8daaf6152771", "x13d1516h2_8daaf6152771_02713d6af862", "t13d 1516*", ""]
)
def test_bad_entries_are_refused(bad: str) -> None:
    with pytest.raises(Ja4PatternError):
        check_entry(bad)


def _profile_text() -> str:
    return (PROFILES_DIR / "tspu-2026-ja4.yaml").read_text()


def test_profile_errors_name_the_set_and_the_rule() -> None:
    text = _profile_text().replace("    entries: []", '    entries: ["t13d"]', 1)
    with pytest.raises(ProfileError, match=r"sets\.ja4-block\.entries: 't13d' is not a JA4"):
        load_profile_text(text, "x.yaml")
    text = _profile_text().replace("ja4_in: ja4-block", "ja4_in: registry")
    with pytest.raises(ProfileError, match=r"when\.ja4_in: no ja4 set 'registry'"):
        load_profile_text(text, "x.yaml")
    text = _profile_text().replace("      sni_in: registry\n", "      sni_in: ja4-block\n")
    with pytest.raises(ProfileError, match=r"when\.sni_in: a JA4 set \(use ja4_in\) 'ja4-block'"):
        load_profile_text(text, "x.yaml")


def test_scenario_entries_go_into_a_ja4_set() -> None:
    profile = load_profile("tspu-2026-reassembly").with_set_entries("ja4-block", [CHROME])
    assert profile.ja4_sets["ja4-block"].match(CHROME) == CHROME
    with pytest.raises(ValueError, match="bad"):
        profile.with_set_entries("ja4-block", ["bad"])
    with pytest.raises(ValueError, match="no set 'ja5'"):
        profile.with_set_entries("ja5", [CHROME])
