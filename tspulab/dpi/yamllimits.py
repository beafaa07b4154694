"""Limits on what one YAML file may hold, checked on the parser's events before anything is built.

Scenario and profile files come from people the user may not trust: the file's size, the nesting
depth, the items of one mapping or list, and the number of values once aliases are expanded (nine
nested anchors, the "billion laughs", stand for 10^9 values in a few hundred bytes) are bounded.
`LimitedParser` checks each event before ruamel's composer gets it, so the text is read once and
the composer (which recurses per nesting level) never sees an event past a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    ScalarEvent,
)
from ruamel.yaml.parser import RoundTripParser


@dataclass(frozen=True)
class YamlLimits:
    """What one YAML file may hold; the shipped scenarios and profiles use a small part of each
    (at most 6 KB, 6 levels, 28 items in one collection, 421 values)."""

    max_bytes: int = 256 * 1024
    """ruamel's round-trip parser is pure Python (tens of KB/s on a busy machine): 256 KiB is 40
    times the largest shipped file, and still parses in seconds."""
    max_depth: int = 32
    """Mappings and lists nested in each other, counted after aliases are expanded."""
    max_items: int = 10_000
    """Keys of one mapping or items of one list (long lists belong in a registry `file:`)."""
    max_values: int = 50_000
    """Scalars, mappings and lists of the whole file once every alias is expanded."""


LIMITS = YamlLimits()


class _Limited(MarkedYAMLError):
    """A limit of `YamlLimits` was passed, at the mark of the event that passed it."""


@dataclass
class _Open:
    """A mapping or list whose end event has not come yet."""

    anchor: str | None
    is_mapping: bool
    children: int = 0
    values: int = 1
    depth: int = 1
    """Levels of this collection and below (aliases expanded)."""


class _LimitChecker:
    """Sees every parser event once and raises `_Limited` at the first limit passed.

    Anchored nodes are remembered by their expanded size and depth, so an alias costs what it
    stands for. An alias to a collection that is still open would make a recursive structure,
    which no scenario needs and which no plain-data conversion survives: refused too.
    """

    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.anchored: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) expanded
        self.stack: list[_Open] = []
        self.total = 0

    def _fail(self, event: Any, message: str) -> None:
        raise _Limited(problem=message, problem_mark=event.start_mark)

    def _too_deep(self, event: Any) -> None:
        depth = self.limits.max_depth
        self._fail(event, f"nested deeper than {depth} levels (limit on nesting depth)")

    def _count(self, event: Any, values: int) -> None:
        self.total += values
        if self.total > self.limits.max_values:
            self._fail(
                event,
                f"more than {self.limits.max_values} values once aliases are expanded "
                "(limit on alias expansion)",
            )

    def _add(self, event: Any, values: int, depth: int) -> None:
        """A finished child of `values` values and `depth` levels joins the open collection."""
        if not self.stack:
            return
        parent = self.stack[-1]
        parent.children += 1
        parent.values += values
        parent.depth = max(parent.depth, depth + 1)
        if len(self.stack) - 1 + parent.depth > self.limits.max_depth:
            self._too_deep(event)
        if parent.children > self.limits.max_items * (2 if parent.is_mapping else 1):
            what = (
                "a mapping with more than {} keys"
                if parent.is_mapping
                else ("a list with more than {} items")
            )
            self._fail(event, what.format(self.limits.max_items) + " (limit on collection size)")

    def see(self, event: Any) -> None:
        if isinstance(event, CollectionStartEvent):
            if len(self.stack) + 1 > self.limits.max_depth:
                self._too_deep(event)
            self._count(event, 1)
            self.stack.append(_Open(event.anchor, isinstance(event, MappingStartEvent)))
        elif isinstance(event, CollectionEndEvent):
            done = self.stack.pop()
            if done.anchor is not None:
                self.anchored[done.anchor] = (done.values, done.depth)
            self._add(event, done.values, done.depth)  # its values were counted as they came
        elif isinstance(event, ScalarEvent):
            if event.anchor is not None:
                self.anchored[event.anchor] = (1, 0)
            self._count(event, 1)
            self._add(event, 1, 0)
        elif isinstance(event, AliasEvent):
            if any(frame.anchor == event.anchor for frame in self.stack):
                self._fail(
                    event,
                    f"alias *{event.anchor} refers to a mapping or list that contains it "
                    "(a recursive structure)",
                )
            if event.anchor in self.anchored:  # else the composer reports the undefined alias
                values, depth = self.anchored[event.anchor]
                self._count(event, values)
                self._add(event, values, depth)


class LimitedParser(RoundTripParser):
    """The round-trip parser, with every event it hands the composer checked against the limits
    first: one pass over the text, and the composer (which recurses per nesting level) never sees
    an event past a limit."""

    def __init__(self, loader: Any) -> None:
        super().__init__(loader)
        self._limits = _LimitChecker(getattr(loader, "tspulab_limits", LIMITS))

    def get_event(self) -> Any:
        event = super().get_event()
        if event is not None:
            self._limits.see(event)
        return event
