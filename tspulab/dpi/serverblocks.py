"""Server blocks that land some time after a detection: the central two-stage cycle.

What is modelled (tspu-behaviour.md §1, TSPU-DOCS §22.4-22.10, an AI-compiled paraphrase of an
operator-training course, [A] only): the filters first only *recognise* a protocol and log the
session; a central system (ЦСУ) cleans the logs and pushes IP:port lists back to the filters as
"block"; the whole cycle takes 5-15 minutes. The press describes the 2025 TSPU the same way,
"detect -> verify -> break" (§10.2 [press]); operators saw a VPN tunnel degrade 5-15 minutes after
it started (§5.9 N4P-#663 [A]).

A ``detect`` rule with ``block_after_s`` gives a ``Detect`` verdict carrying the delay. When the
engine logs that detection it schedules a block of the server's (address, port, transport); from
``detected + delay`` on, every flow to that IP:port, whoever opened it and whenever, is dropped,
the detected flow itself included. An earlier schedule for the same IP:port is kept (the list is
pushed once). Blocks do not expire: the sources give no lifetime.

Time is an argument; nothing reads a clock, so tests drive it like a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

ServerKey = tuple[bytes, int, int]
"""(server address, server port, IP protocol)."""


@dataclass(frozen=True, slots=True)
class ServerBlock:
    """One IP:port on the blocklist from ``since`` on."""

    since: float
    detected: float
    rule: str
    protocol: str
    """What the detection recognised (for the verdict's reason)."""


class ServerBlocks:
    """The IP:port blocks scheduled by detections, by server."""

    def __init__(self) -> None:
        self._blocks: dict[ServerKey, ServerBlock] = {}

    def __bool__(self) -> bool:
        return bool(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def schedule(
        self, key: ServerKey, detected: float, delay: float, rule: str, protocol: str
    ) -> ServerBlock:
        """Block ``key`` from ``detected + delay`` on, unless it is already scheduled earlier."""
        block = ServerBlock(detected + delay, detected, rule, protocol)
        held = self._blocks.get(key)
        if held is not None and held.since <= block.since:
            return held
        self._blocks[key] = block
        return block

    def active(self, key: ServerKey, now: float) -> ServerBlock | None:
        """The block on ``key`` if it has landed by ``now``."""
        block = self._blocks.get(key)
        return block if block is not None and block.since <= now else None

    def pending(self) -> list[tuple[ServerKey, ServerBlock]]:
        """Every scheduled block, landed or not, earliest first."""
        return sorted(self._blocks.items(), key=lambda kv: kv[1].since)
