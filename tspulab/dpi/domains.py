"""Domain rules of a block registry, and matching a name (an SNI or HTTP Host) against them.

Censors have matched names in different ways, and the differences decide who gets hit:

* ``exact``: the name equals the rule (``twitter.com`` after 2021-04-02 did not hit
  ``nottwitter.com``).
* ``suffix``: ``*.twimg.com`` hits every *strict* sub-domain (``garbage.twimg.com``), **not**
  the apex ``twimg.com`` itself: the apex needs its own exact rule, as in the 2021 rule set.
* ``subtree``: the name and every sub-domain, on label boundaries. This is what the Roskomnadzor
  ``*.example.com`` masks are usually enforced as, and what domain block lists (Re-filter, zapret
  host lists) mean by a bare ``example.com``.
* ``substring``: the text anywhere in the name, ignoring labels. The early 2021 Twitter rule
  ``*t.co*`` hit reddi**t.co**m, microsof**t.co**m and rt.com (tspu-behaviour.md §3).
* ``ends-with``: the name ends with the text, ignoring labels. The early 2021 rule
  ``*twitter.com`` (§3) hit ``twitter.com``, ``mobile.twitter.com`` and ``nottwitter.com``, but
  not ``twitter.community`` or ``twitter.com.example``, which a substring rule would.

Rules are stored canonical: lower-case ASCII (IDN names as IDNA A-labels, the form an SNI carries),
no trailing dot, no wildcard syntax. The *looked-up* name is matched as given (``match``):
whether the censor folds case or strips a trailing dot is a property of its behaviour profile, so
``normalise_name`` is separate. The 2021 throttler did not match ``twitter.com.``; a raw lookup
reproduces that.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple, cast

import ahocorasick

# Fewer substring rules than this are scanned with ``in`` one by one; more go into an Aho-Corasick
# automaton. Measured in bench/registry_scale.py: the loop wins up to ~10 patterns, the automaton
# above (at 1,000 patterns: loop 40 k/s, regex alternation 28 k/s, automaton 1.9 M/s).
_AHO_CORASICK_FROM = 8

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class MatchKind(StrEnum):
    """How a domain rule matches a name."""

    EXACT = "exact"
    """The name equals the rule."""
    SUFFIX = "suffix"
    """``*.example.com``: any strict sub-domain; the apex ``example.com`` does not match."""
    SUBTREE = "subtree"
    """``example.com`` and every sub-domain of it, on label boundaries."""
    SUBSTRING = "substring"
    """``*t.co*``: the rule text anywhere in the name, across label boundaries."""
    ENDS_WITH = "ends-with"
    """``*twitter.com``: the name ends with the rule text, across label boundaries."""


class DomainRule(NamedTuple):
    """One domain rule and where it came from."""

    name: str
    """Canonical text matched: lower-case ASCII, no trailing dot, no ``*``."""
    kind: MatchKind
    source: str
    """Where the rule came from: ``file:line``, ``inline[i]`` or what the caller passed."""
    pattern: str
    """The rule as written in its source (e.g. ``*.twimg.com`` or a Cyrillic name)."""
    decision: str | None = None
    """Registry decision number, when the source has one."""

    @property
    def key(self) -> tuple[MatchKind, str]:
        """Identity of the rule for de-duplication and diffs (the source does not count)."""
        return (self.kind, self.name)


class DomainPatternError(ValueError):
    """A domain rule that cannot be a rule (bad characters, empty label, ambiguous wildcard)."""


def normalise_name(name: str) -> str:
    """Fold case and drop one trailing dot: what a tolerant censor does before matching."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def parse_pattern(text: str, default_kind: MatchKind = MatchKind.EXACT) -> tuple[MatchKind, str]:
    """Read glob-like rule syntax: ``*x*`` substring, ``*.x`` suffix, bare ``x`` ``default_kind``.

    A leading ``*`` without a dot (``*twitter.com``) is refused unless ``default_kind`` is
    ``ends-with``: read as text that ends the name it is what the 2021 rule did (§3: it hit
    ``twitter.com`` and its sub-domains, and the trailing-dot name evaded it), but a list written
    for another censor may have meant a sub-domain mask, so the caller must say which.
    """
    text = text.strip()
    if len(text) > 2 and text.startswith("*") and text.endswith("*"):
        return MatchKind.SUBSTRING, canonical_rule_name(text[1:-1], MatchKind.SUBSTRING)
    if text.startswith("*."):
        return MatchKind.SUFFIX, canonical_rule_name(text[2:], MatchKind.SUFFIX)
    if default_kind is MatchKind.ENDS_WITH and text.startswith("*") and not text.endswith("*"):
        return MatchKind.ENDS_WITH, canonical_rule_name(text[1:], MatchKind.ENDS_WITH)
    if text.startswith("*") or text.endswith("*"):
        raise DomainPatternError(
            f"ambiguous wildcard {text!r}: write *x* (substring), *.x (suffix) or give the kind"
        )
    return default_kind, canonical_rule_name(text, default_kind)


def canonical_rule_name(text: str, kind: MatchKind) -> str:
    """Rule text in its canonical form for ``kind``; ``DomainPatternError`` when it cannot be one.

    Wildcard syntax that agrees with ``kind`` is accepted and removed (``*.x`` for suffix, ``*x*``
    for substring), so ``add_domain("*.twimg.com", MatchKind.SUFFIX)`` and
    ``add_domain("twimg.com", MatchKind.SUFFIX)`` are the same rule.
    """
    name = text.strip()
    if kind is MatchKind.SUFFIX and name.startswith("*."):
        name = name[2:]
    elif kind is MatchKind.SUBSTRING and len(name) > 2 and name[0] == name[-1] == "*":
        name = name[1:-1]
    elif kind is MatchKind.ENDS_WITH and name.startswith("*"):
        name = name[1:]
    name = name.lower()
    if kind is not MatchKind.SUBSTRING and name.endswith("."):
        name = name[:-1]
    if not name:
        raise DomainPatternError(f"empty domain rule {text!r}")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise DomainPatternError(f"not a valid IDN name {text!r}: {exc}") from None
    bad = set(name) - _NAME_CHARS
    if bad:
        raise DomainPatternError(f"bad character(s) {''.join(sorted(bad))!r} in rule {text!r}")
    if kind is not MatchKind.SUBSTRING and (name.startswith(".") or ".." in name):
        raise DomainPatternError(f"empty label in rule {text!r}")
    return name


class DomainMatcher:
    """Read-only index over domain rules, built once, matched many times.

    Order of precedence when several rules hit: exact, then the most specific suffix/subtree rule
    (the longest parent), then the longest ends-with rule, then a substring rule.
    """

    def __init__(self, rules: Iterable[DomainRule]) -> None:
        self._exact: dict[str, DomainRule] = {}
        self._apex: dict[str, DomainRule] = {}  # subtree rules: hit by the name itself
        self._below: dict[str, DomainRule] = {}  # suffix and subtree rules: hit by sub-domains
        self._ends: dict[str, DomainRule] = {}  # ends-with rules: hit by any name ending so
        substrings: dict[str, DomainRule] = {}
        for rule in rules:
            if rule.kind is MatchKind.EXACT:
                self._exact.setdefault(rule.name, rule)
            elif rule.kind is MatchKind.SUFFIX:
                self._below.setdefault(rule.name, rule)
            elif rule.kind is MatchKind.SUBTREE:
                self._apex.setdefault(rule.name, rule)
                self._below.setdefault(rule.name, rule)
            elif rule.kind is MatchKind.ENDS_WITH:
                self._ends.setdefault(rule.name, rule)
            else:
                substrings.setdefault(rule.name, rule)
        self._substrings = tuple(substrings.values())
        self._automaton: ahocorasick.Automaton | None = None
        if len(self._substrings) >= _AHO_CORASICK_FROM:
            automaton = ahocorasick.Automaton()
            for rule in self._substrings:
                automaton.add_word(rule.name, rule)
            automaton.make_automaton()
            self._automaton = automaton

    def match(self, name: str) -> DomainRule | None:
        """The rule ``name`` hits, matched as given (no case folding, trailing dot kept)."""
        rule = self._exact.get(name) or self._apex.get(name)
        if rule is not None:
            return rule
        below = self._below
        if below:
            dot = name.find(".")
            while dot >= 0:
                rule = below.get(name[dot + 1 :])
                if rule is not None:
                    return rule
                dot = name.find(".", dot + 1)
        if self._ends:
            rule = self._match_ends(name)
            if rule is not None:
                return rule
        return self._match_substring(name)

    def _match_ends(self, name: str) -> DomainRule | None:
        """The longest ends-with rule ``name`` ends with: one dict lookup per tail of the name."""
        ends = self._ends
        for start in range(len(name)):
            rule = ends.get(name[start:])
            if rule is not None:
                return rule
        return None

    def _match_substring(self, name: str) -> DomainRule | None:
        if self._automaton is not None:
            for _end, found in self._automaton.iter(name):
                return cast(DomainRule, found)
            return None
        for rule in self._substrings:
            if rule.name in name:
                return rule
        return None

    def match_all(self, name: str) -> list[DomainRule]:
        """Every rule ``name`` hits, in precedence order (for reports on collateral damage)."""
        hits: list[DomainRule] = []
        for table in (self._exact, self._apex):
            rule = table.get(name)
            if rule is not None:
                hits.append(rule)
        dot = name.find(".")
        while dot >= 0:
            rule = self._below.get(name[dot + 1 :])
            if rule is not None and rule not in hits:
                hits.append(rule)
            dot = name.find(".", dot + 1)
        hits.extend(r for r in self._ends.values() if name.endswith(r.name) and r not in hits)
        hits.extend(rule for rule in self._substrings if rule.name in name)
        return hits
