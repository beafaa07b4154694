"""Which cells a run measures, which slice a shard takes, and how cells are grouped into labs.

Cells are ordered method-major (every profile of a method, then the next method). A shard `i/N`
takes the i-th of N contiguous slices of that order, so the N shards cover every cell exactly
once whatever N is, the same on every machine, and each shard starts the servers of about 1/N of
the methods. Within a run, bringing a lab up is the cost (the switches, the controller, every
method's server: a private Tor network alone takes 10-20 s), so a lab holds many cells: one ISP
per profile of its cells and the servers of its methods, started once; `jobs` labs run at a time,
each in its own sandbox, the methods split between them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Cell:
    method: str
    profile: str

    def key(self) -> str:
        return f"{self.method}@{self.profile}"


@dataclass(frozen=True)
class Shard:
    """Slice `index` (1-based) of `count`."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: expected 1 <= i <= N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"shard {text!r}: expected i/N, e.g. 2/8 (1 <= i <= N)")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def take(self, cells: Sequence[Cell]) -> list[Cell]:
        """This shard's contiguous slice of `cells`."""
        n = len(cells)
        start = (self.index - 1) * n // self.count
        end = self.index * n // self.count
        return list(cells[start:end])


@dataclass(frozen=True)
class LabUnit:
    """Cells that one lab measures: the servers of `methods`, an ISP per profile in `profiles`."""

    id: str
    cells: tuple[Cell, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.method for c in self.cells))

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.profile for c in self.cells))


def all_cells(methods: Sequence[str], profiles: Sequence[str]) -> list[Cell]:
    return [Cell(m, p) for m in methods for p in profiles]


def group_labs(cells: Sequence[Cell], jobs: int, max_methods: int = 0) -> list[LabUnit]:
    """Split `cells` into labs by method: as many labs as `jobs` (fewer if there are fewer
    methods), or more when a lab would hold more than `max_methods` methods (0: no bound).
    Each method's cells stay in one lab, so its server starts once."""
    methods = list(dict.fromkeys(c.method for c in cells))
    if not methods:
        return []
    labs = min(max(1, jobs), len(methods))
    if max_methods > 0:
        labs = max(labs, -(-len(methods) // max_methods))
    # Round robin: the slow settings (a Tor network, VPNs whose handshakes a profile drops and
    # whose clients then wait out their timeouts) sit next to each other in the catalogue.
    groups = [methods[k::labs] for k in range(labs)]
    units = []
    for k, group in enumerate(groups, start=1):
        members = set(group)
        units.append(LabUnit(f"lab{k}", tuple(c for c in cells if c.method in members)))
    return units
