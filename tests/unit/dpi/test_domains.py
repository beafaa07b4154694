"""Domain rules: pattern syntax, the four match kinds, raw vs normalised lookups, both engines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tspulab.dpi.domains import (
    DomainMatcher,
    DomainPatternError,
    DomainRule,
    MatchKind,
    canonical_rule_name,
    normalise_name,
    parse_pattern,
)
from tspulab.dpi.registry import Registry


def rule(text: str, kind: MatchKind) -> DomainRule:
    return DomainRule(canonical_rule_name(text, kind), kind, "test", text)


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("*t.co*", MatchKind.SUBSTRING, "t.co"),
        ("*.twimg.com", MatchKind.SUFFIX, "twimg.com"),
        ("Twitter.COM.", MatchKind.EXACT, "twitter.com"),
        ("  t.co  ", MatchKind.EXACT, "t.co"),
        ("пример.рф", MatchKind.EXACT, "xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_parse_pattern(text: str, kind: MatchKind, name: str) -> None:
    assert parse_pattern(text) == (kind, name)


def test_bare_name_takes_the_default_kind() -> None:
    assert parse_pattern("example.com", MatchKind.SUBTREE) == (MatchKind.SUBTREE, "example.com")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*twitter.com", "ambiguous wildcard"),
        ("twitter.*", "ambiguous wildcard"),
        ("", "empty"),
        ("a..b", "empty label"),
        ("*.", "empty"),
        ("exa mple.com", "bad character"),
        ("host.example:443", "bad character"),
        ("a/b.com", "bad character"),
    ],
)
def test_bad_patterns_say_why(text: str, reason: str) -> None:
    with pytest.raises(DomainPatternError, match=reason):
        parse_pattern(text)


def test_kind_given_explicitly_accepts_matching_wildcard_syntax() -> None:
    assert canonical_rule_name("*.twimg.com", MatchKind.SUFFIX) == "twimg.com"
    assert canonical_rule_name("twimg.com", MatchKind.SUFFIX) == "twimg.com"
    assert canonical_rule_name("*t.co*", MatchKind.SUBSTRING) == "t.co"
    with pytest.raises(DomainPatternError):
        canonical_rule_name("*twitter.com", MatchKind.EXACT)


def test_suffix_matches_subdomains_but_not_the_apex() -> None:
    m = DomainMatcher([rule("*.twimg.com", MatchKind.SUFFIX)])
    assert m.match("garbage.twimg.com") is not None  # CP-THR: any sub-domain of twimg.com
    assert m.match("a.b.twimg.com") is not None
    assert m.match("twimg.com") is None
    assert m.match("nottwimg.com") is None
    assert m.match("twimg.com.evil.org") is None


def test_subtree_matches_apex_and_subdomains_on_label_boundaries() -> None:
    m = DomainMatcher([rule("example.com", MatchKind.SUBTREE)])
    assert m.match("example.com") is not None
    assert m.match("www.example.com") is not None
    assert m.match("notexample.com") is None
    assert m.match("example.com.au") is None


def test_early_substring_rule_hits_reddit_microsoft_and_rt() -> None:
    """tspu-behaviour.md §3: ``*t.co*`` throttled reddit.com, microsoft.com and rt.com too."""
    reg = Registry()
    reg.add_domain("*t.co*", MatchKind.SUBSTRING, "CP-THR 2021-03-10")
    for collateral in ("reddit.com", "microsoft.com", "rt.com", "www.reddit.com", "t.co"):
        hit = reg.match_domain(collateral)
        assert hit is not None and hit.pattern == "*t.co*" and hit.source == "CP-THR 2021-03-10"
    assert reg.match_domain("twitter.com") is None  # no "t.co" in it
    assert reg.match_domain("yandex.ru") is None


def test_twitter_exact_after_2021_04_02_does_not_hit_nottwitter() -> None:
    early, late = Registry(), Registry()
    early.add_domain("twitter.com", MatchKind.SUBSTRING, "CP-THR early *twitter.com")
    late.add_domain("twitter.com", MatchKind.EXACT, "CP-THR by 2021-04-02")
    assert early.match_domain("nottwitter.com") is not None
    assert late.match_domain("nottwitter.com") is None
    assert late.match_domain("twitter.com") is not None
    assert late.match_domain("api.twitter.com") is None


def test_trailing_dot_and_case_evade_only_the_raw_lookup() -> None:
    """The 2021 throttler did not match ``twitter.com.``: a raw lookup reproduces that."""
    reg = Registry()
    reg.add_domain("twitter.com", MatchKind.EXACT, "t")
    reg.add_domain("*.twimg.com", MatchKind.SUFFIX, "t")
    assert reg.match_domain_raw("twitter.com.") is None
    assert reg.match_domain_raw("pbs.twimg.com.") is None
    assert reg.match_domain_raw("TWITTER.com") is None
    assert reg.match_domain_raw("twitter.com") is not None
    assert reg.match_domain("twitter.com.") is not None
    assert reg.match_domain("PBS.TwImg.com.") is not None
    assert reg.match_domain("twitter.com.", strip_trailing_dot=False) is None
    assert reg.match_domain("TWITTER.COM", fold_case=False) is None
    assert reg.match_domain("twitter.com..") is None  # only one dot is dropped
    assert normalise_name("A.B.") == "a.b"


def test_sni_as_bytes() -> None:
    reg = Registry()
    reg.add_domain("web.telegram.org", MatchKind.EXACT, "s")
    assert reg.match_domain(b"web.telegram.org") is not None
    assert reg.match_domain_raw(b"web.telegram.org") is not None
    assert reg.match_domain(b"\xffweb.telegram.org") is None


def test_precedence_exact_then_most_specific_parent_then_substring() -> None:
    rules = [
        rule("*a.b*", MatchKind.SUBSTRING),
        rule("b.c", MatchKind.SUBTREE),
        rule("*.a.b.c", MatchKind.SUFFIX),
        rule("x.a.b.c", MatchKind.EXACT),
    ]
    m = DomainMatcher(rules)
    assert m.match("x.a.b.c") == rules[3]
    assert m.match("y.a.b.c") == rules[2]
    assert m.match("a.b.c") == rules[1]
    assert m.match("xa.bz") == rules[0]
    assert m.match_all("x.a.b.c") == [rules[3], rules[2], rules[1], rules[0]]


def test_duplicate_rule_keeps_first_source() -> None:
    reg = Registry()
    first = reg.add_domain("T.co", MatchKind.EXACT, "one")
    second = reg.add_domain("t.co.", MatchKind.EXACT, "two")
    assert second is first and reg.domain_count() == 1
    assert reg.match_domain("t.co") == first


LABEL = st.text(alphabet="abct.o-", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(LABEL, min_size=1, max_size=20, unique=True),
    names=st.lists(st.text(alphabet="abct.o-", max_size=14), min_size=1, max_size=20),
)
def test_substring_engines_agree_with_plain_containment(
    patterns: list[str], names: list[str]
) -> None:
    """Loop (< 8 rules) and Aho-Corasick (>= 8) both find a rule iff some pattern is contained."""
    rules = [DomainRule(p, MatchKind.SUBSTRING, "h", p) for p in patterns]
    matcher = DomainMatcher(rules)
    for name in names:
        found = matcher.match(name)
        contained = {p for p in patterns if p in name}
        if contained:
            assert found is not None and found.name in contained
        else:
            assert found is None


def test_collateral_report_lists_every_rule_hit() -> None:
    reg = Registry()
    reg.add_domain("*t.co*", MatchKind.SUBSTRING, "early")
    reg.add_domain("reddit.com", MatchKind.SUBTREE, "list")
    hits = reg.match_domain_all("www.reddit.com")
    assert [(r.kind, r.source) for r in hits] == [
        (MatchKind.SUBTREE, "list"),
        (MatchKind.SUBSTRING, "early"),
    ]
    assert reg.match_domain_all("yandex.ru") == []


def test_idn_list_line_matches_its_punycode_sni() -> None:
    reg = Registry()
    added = reg.add("пример.рф", "list:1", MatchKind.SUBTREE)
    assert isinstance(added, DomainRule) and added.pattern == "пример.рф"
    assert reg.match_domain(b"www.xn--e1afmkfd.xn--p1ai") == added


def test_ends_with_rule_matches_the_end_of_the_name_across_labels() -> None:
    """§3 CP-THR: the early rule ``*twitter.com`` hit names ending in twitter.com (nottwitter.com
    too), not names merely containing it; read so only where the caller says ``ends-with``."""
    assert parse_pattern("*twitter.com", MatchKind.ENDS_WITH) == (
        MatchKind.ENDS_WITH,
        "twitter.com",
    )
    assert parse_pattern("*.twimg.com", MatchKind.ENDS_WITH) == (MatchKind.SUFFIX, "twimg.com")
    assert parse_pattern("*t.co*", MatchKind.ENDS_WITH) == (MatchKind.SUBSTRING, "t.co")
    with pytest.raises(DomainPatternError, match="ambiguous"):
        parse_pattern("*twitter.com")
    reg = Registry()
    reg.add("*twitter.com", domain_kind=MatchKind.ENDS_WITH)
    reg.add("*ter.com", domain_kind=MatchKind.ENDS_WITH)
    for name in ("twitter.com", "api.twitter.com", "nottwitter.com"):
        hit = reg.match_domain_raw(name)
        assert hit is not None and hit.name == "twitter.com", name  # the longest wins
    assert reg.match_domain_raw("porter.com") is not None
    for name in ("twitter.community", "twitter.com.example", "twitter.com.", "twitter.co"):
        assert reg.match_domain_raw(name) is None, name
    assert [r.name for r in reg.domain_rules()] == ["twitter.com", "ter.com"]
