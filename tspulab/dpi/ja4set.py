"""A named set of JA4 fingerprints a profile rule can match (``when: {ja4_in: <set>}``).

What is modelled: a box that classifies a TLS client by the fingerprint of its ClientHello (FoxIO
JA4, computed by tls.py on the ClientHello the classifier read, after whatever reassembly the
profile does), not by its server name. tspu-behaviour.md reports this for 2026: MTProxy fake-TLS
classified by its JA3/JA4 from April 2026 (§5.1, teleproxy #39 [A]), after a TSPU update that
reassembles the TCP stream before JA4 fingerprinting (§5.10), and Chrome's standard fingerprint
blocked towards many non-Russian addresses (§5.8, N4P-#662 [A]). The sources name no fingerprint
value, so the shipped sets are empty and scenarios list theirs.

An entry is a JA4 (``t13d1516h2_8daaf6152771_02713d6af862``) or a glob over one
(``t13d*_8daaf6152771_*``): ``*`` stands for any run of characters, ``?`` for one, so a rule can
pin the cipher hash and leave the rest open, as JA4's sections are meant to be used.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

# JA4_a (10 characters), then two 12-character hex hashes; globs may replace any part.
_JA4 = re.compile(r"[tqd][0-9a-z]{2}[di][0-9]{2}[0-9]{2}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}")
_GLOB_CHARS = re.compile(r"[0-9a-z_*?]+")


class Ja4PatternError(ValueError):
    """An entry that is neither a JA4 nor a glob over one."""


def check_entry(text: str) -> str:
    """``text`` (stripped, lower case) if it is a JA4 or a glob over one."""
    entry = text.strip().lower()
    if "*" in entry or "?" in entry:
        if not _GLOB_CHARS.fullmatch(entry):
            raise Ja4PatternError(f"{text!r}: a JA4 glob has only [0-9a-z_], '*' and '?'")
    elif not _JA4.fullmatch(entry):
        raise Ja4PatternError(
            f"{text!r} is not a JA4 (t13d1516h2_8daaf6152771_02713d6af862: a 10-character "
            "JA4_a, then two 12-digit hex hashes); use * or ? for a pattern"
        )
    return entry


@dataclass(frozen=True, slots=True)
class Ja4Set:
    """Exact JA4s (one set lookup) and globs (tried in order)."""

    exact: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> Ja4Set:
        """A set from entries; ``Ja4PatternError`` names the first bad one."""
        exact: set[str] = set()
        globs: list[str] = []
        for text in entries:
            entry = check_entry(text)
            if "*" in entry or "?" in entry:
                if entry not in globs:
                    globs.append(entry)
            else:
                exact.add(entry)
        return cls(frozenset(exact), tuple(globs))

    def union(self, other: Ja4Set) -> Ja4Set:
        globs = (*self.globs, *(g for g in other.globs if g not in self.globs))
        return Ja4Set(self.exact | other.exact, globs)

    def match(self, ja4: str | None) -> str | None:
        """The entry ``ja4`` matches (itself, or the first glob), or None."""
        if ja4 is None:
            return None
        if ja4 in self.exact:
            return ja4
        for glob in self.globs:
            if fnmatch.fnmatchcase(ja4, glob):
                return glob
        return None

    def __len__(self) -> int:
        return len(self.exact) + len(self.globs)
