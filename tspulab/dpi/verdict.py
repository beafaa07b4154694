"""What the TSPU decides about a flow, as data a switch can later carry out.

A ``Verdict`` is declarative and tagged: one type per action (``Allow``, ``Drop``, ``Reset``,
``DropAfter``, ``Police``, ``RandomLoss``, ``FreezeAfterBytes``, ``HostBlock``, ``Detect``),
each carrying only that action's parameters (``Verdict`` is their union; ``action`` names the
type's ``Action``), so a reader matches on the type instead of testing optional fields. It names
an action and its parameters (a rate and burst for a
policer, a byte count for a freeze, a duration and scope for a host block) rather than holding
code, so the controller can turn it into OpenFlow 1.3 state (drop rules, meters, packet-outs of a
RST, timers) and a replay can print it. ``final`` says whether the box has made up its mind: a
final verdict lets the switch take the flow over; a non-final one keeps the flow's packets coming
to the DPI (the inspection window is still open, or the verdict is provisional).

``Fate`` is what happens to one packet under a verdict (the engine computes it: a policer's token
bucket, a drop-after count, a freeze's byte count), so a replay shows the same packet-level outcome
a live switch should produce.

The actions and the facts that need them (tspu-behaviour.md):

==================== ====================================================================
allow                no rule, an outside-initiated flow (§2.3), an allowlisted destination
drop                 IP mode (§2.2 IP), SNI-IV (§2.2), the 2022 QUIC rule (§5.3), VPNs (§5.4)
reset                SNI-I: the server's reply rewritten into a RST/ACK to the client (§2.2)
drop-after           SNI-II: 5-8 more packets, then drop both ways (§2.2); ECH (§5.6)
police               Twitter 2021: token bucket per direction, excess dropped (§3)
random-loss          YouTube 2024 (§5.7)
freeze-after-bytes   foreign hosting 2025: server->client stops after ~16 KB (§5.8)
host-block           UDP to a hosting range blocks HTTPS to another for 10 minutes (§5.8)
detect               the flow passes; subscriber, protocol and time are logged (§1 TSPU-DOCS)
==================== ====================================================================
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, fields
from enum import StrEnum
from typing import ClassVar


class Action(StrEnum):
    ALLOW = "allow"
    DROP = "drop"
    RESET = "reset"
    DROP_AFTER = "drop-after"
    POLICE = "police"
    RANDOM_LOSS = "random-loss"
    FREEZE_AFTER_BYTES = "freeze-after-bytes"
    HOST_BLOCK = "host-block"
    DETECT = "detect"


class Fate(StrEnum):
    """What happens to one packet."""

    FORWARD = "forward"
    DROP = "drop"
    RESET = "reset"
    """The packet is replaced by a RST/ACK without payload towards its receiver (SNI-I rewrite)."""


DIRECTIONS = ("both", "client-to-server", "server-to-client")
SCOPES = ("flow", "server-host", "client-host")


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What every verdict has; the action's own parameters are in the subclasses."""

    action: ClassVar[Action]
    final: bool
    """True: the decision is made and the switch can take over the flow; False: keep inspecting."""
    reason: str
    """Human text with the tspu-behaviour.md section, e.g. "SNI-II (§2.2): twitter.com ..."."""
    rule: str | None
    """The profile rule id (and registry entry, when one matched)."""
    _: KW_ONLY
    idle_timeout_s: float | None = None
    """The flow state's idle expiry the switch rule should carry (time-scaled)."""
    hard_timeout_s: float | None = None
    """An absolute lifetime for the switch rule, when the state has one (time-scaled)."""

    def to_json(self) -> dict[str, object]:
        """The verdict as a JSON-ready dict; unset optional fields are left out."""
        out: dict[str, object] = {
            "action": str(self.action),
            "final": self.final,
            "reason": self.reason,
            "rule": self.rule,
        }
        for f in fields(self):
            if f.name in out:
                continue
            value = getattr(self, f.name)
            if value is None or (f.name == "scope" and value == "flow"):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if not out.get("target_ports", True):
            del out["target_ports"]
        return out

    def _text(self) -> str:
        return str(self.action)

    def short(self) -> str:
        """One-line summary for tables: the action and its main parameter."""
        return self._text() if self.final else self._text() + " (pending)"


@dataclass(frozen=True, slots=True)
class Allow(_Verdict):
    action: ClassVar[Action] = Action.ALLOW


@dataclass(frozen=True, slots=True)
class Detect(_Verdict):
    """The flow passes; who used what, and when, is logged (§1 TSPU-DOCS)."""

    action: ClassVar[Action] = Action.DETECT
    _: KW_ONLY
    block_after_s: float | None = None
    """The server's IP:port is blocked this long after the detection (time-scaled), for every
    subscriber: stage 2 of the vendor course's cycle (§1 [A]); None: logged only."""


@dataclass(frozen=True, slots=True)
class Drop(_Verdict):
    action: ClassVar[Action] = Action.DROP
    _: KW_ONLY
    scope: str = "flow"
    """"flow", or "client-host" for the drops of a subscriber's host block."""


@dataclass(frozen=True, slots=True)
class Reset(_Verdict):
    action: ClassVar[Action] = Action.RESET
    _: KW_ONLY
    reset_side: str
    """Who receives the RST, "client" | "server" | "both"."""
    reset_mode: str
    """"inject" (a RST sent beside the packets) or "rewrite" (a packet replaced by it)."""

    def _text(self) -> str:
        return f"reset {self.reset_side} ({self.reset_mode})"


@dataclass(frozen=True, slots=True)
class DropAfter(_Verdict):
    action: ClassVar[Action] = Action.DROP_AFTER
    _: KW_ONLY
    after_packets: int
    """Packets still forwarded (both directions counted) after the trigger."""

    def _text(self) -> str:
        return f"drop after {self.after_packets}"


@dataclass(frozen=True, slots=True)
class Police(_Verdict):
    action: ClassVar[Action] = Action.POLICE
    _: KW_ONLY
    rate_bps: int
    """Token rate in bits per second, per direction (see ``direction``)."""
    burst_bytes: int
    """Bucket depth in bytes."""
    direction: str = "both"
    """"both" | "client-to-server" | "server-to-client"."""

    def _text(self) -> str:
        return f"police {self.rate_bps} bps/{self.burst_bytes} B {self.direction}"


@dataclass(frozen=True, slots=True)
class RandomLoss(_Verdict):
    action: ClassVar[Action] = Action.RANDOM_LOSS
    _: KW_ONLY
    loss: float
    """Drop probability per packet in ``direction``."""
    direction: str = "both"

    def _text(self) -> str:
        return f"random loss {self.loss} {self.direction}"


@dataclass(frozen=True, slots=True)
class FreezeAfterBytes(_Verdict):
    action: ClassVar[Action] = Action.FREEZE_AFTER_BYTES
    _: KW_ONLY
    freeze_bytes: int
    """Server->client L4 payload bytes forwarded before the freeze."""
    reset: bool | None = None
    """True: the cut comes with a RST to the client (TCP; §10.2, "sometimes"); else silent."""

    def _text(self) -> str:
        return f"freeze after {self.freeze_bytes} B" + (" with a RST" if self.reset else "")


@dataclass(frozen=True, slots=True)
class HostBlock(_Verdict):
    """The flow passes; the subscriber's new flows to ``target_set`` are dropped for
    ``duration_s`` (§5.8)."""

    action: ClassVar[Action] = Action.HOST_BLOCK
    _: KW_ONLY
    duration_s: float
    """How long the block lasts (already multiplied by the engine's time scale)."""
    target_set: str
    """The profile address set the block covers (e.g. "ovh")."""
    scope: str = "client-host"
    """What the block covers: "client-host" blocks the subscriber (the flow's client) from
    ``target_set``."""
    target_ports: tuple[int, ...] = ()
    """Destination ports covered (empty: all)."""
    target_transport: str | None = None
    """"tcp" | "udp" | None (any)."""

    def _text(self) -> str:
        return f"host block {self.scope} -> {self.target_set} for {self.duration_s} s"


Verdict = (
    Allow | Detect | Drop | Reset | DropAfter | Police | RandomLoss | FreezeAfterBytes | HostBlock
)
"""A decision about one flow: one of the action types above."""

BY_ACTION: dict[Action, type[_Verdict]] = {
    cls.action: cls
    for cls in (Allow, Detect, Drop, Reset, DropAfter, Police, RandomLoss, FreezeAfterBytes,
                HostBlock)
}  # fmt: skip
