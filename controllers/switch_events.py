"""What happens to a TSPU box, as plain data: the input of `TspuBox.handle(now, event)`.

The os-ken app turns each OpenFlow event (and each control-channel command) into one of these
and hands it to the switch's box; tests build them directly. Nothing here refers to os-ken, so a
box can be driven, and checked, without a switch or a controller (FAUCET's valve.py shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tspulab.dpi.registry import Registry


@dataclass(frozen=True)
class SwitchUp:
    """The switch (re)connected and sent its features: it holds nothing we can rely on."""


@dataclass(frozen=True)
class SwitchDown:
    """The connection to the switch is gone."""


@dataclass(frozen=True)
class PacketIn:
    data: bytes
    #: None when the packet-in's match carried no in_port (malformed)
    in_port: int | None
    #: the frame's full length; more than len(data) when the switch truncated it
    total_len: int
    #: cookie of the rule that sent it (the mirror rule's says: already forwarded)
    cookie: int = 0
    reason: int = 0
    table_id: int = 0


@dataclass(frozen=True)
class FlowRemoved:
    match: Mapping[str, Any]
    reason: int
    cookie: int = 0


@dataclass(frozen=True)
class SwitchError:
    """An OFPT_ERROR from the switch: type, code and the start of the message it refused."""

    type: int
    code: int
    data: bytes = b""


@dataclass(frozen=True)
class BarrierReply:
    pass


@dataclass(frozen=True)
class RegistryChange:
    registry: Registry
    source: Path | None = None


@dataclass(frozen=True)
class ProfileChange:
    name: str


Event = (
    SwitchUp
    | SwitchDown
    | PacketIn
    | FlowRemoved
    | SwitchError
    | BarrierReply
    | RegistryChange
    | ProfileChange
)
