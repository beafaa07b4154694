"""What the TSPU decides about a flow, as data a switch can later carry out.

A ``Verdict`` is declarative: it names an action and its parameters (a rate and burst for a
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

from dataclasses import dataclass
from enum import StrEnum


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
class Verdict:
    """The decision about one flow (see the module docstring for the actions)."""

    action: Action
    final: bool
    """True: the decision is made and the switch can take over the flow; False: keep inspecting."""
    reason: str
    """Human text with the tspu-behaviour.md section, e.g. "SNI-II (§2.2): twitter.com ..."."""
    rule: str | None
    """The profile rule id (and registry entry, when one matched)."""
    reset_side: str | None = None
    """RESET: who receives the RST, "client" | "server" | "both"."""
    reset_mode: str | None = None
    """RESET: "inject" (a RST sent beside the packets) or "rewrite" (a packet replaced by it)."""
    after_packets: int | None = None
    """DROP_AFTER: packets still forwarded (both directions counted) after the trigger."""
    rate_bps: int | None = None
    """POLICE: token rate in bits per second, per direction (see ``direction``)."""
    burst_bytes: int | None = None
    """POLICE: bucket depth in bytes."""
    direction: str = "both"
    """POLICE / RANDOM_LOSS / FREEZE: "both" | "client-to-server" | "server-to-client"."""
    loss: float | None = None
    """RANDOM_LOSS: drop probability per packet in ``direction``."""
    freeze_bytes: int | None = None
    """FREEZE_AFTER_BYTES: server->client L4 payload bytes forwarded before the freeze."""
    duration_s: float | None = None
    """HOST_BLOCK: how long the block lasts (already multiplied by the engine's time scale)."""
    scope: str = "flow"
    """"flow" | "server-host" | "client-host": what a HOST_BLOCK (or a drop) covers. For
    "client-host", the subscriber (the flow's client) is blocked from ``target_set``."""
    target_set: str | None = None
    """HOST_BLOCK: the profile address set the block covers (e.g. "ovh")."""
    target_ports: tuple[int, ...] = ()
    """HOST_BLOCK: destination ports covered (empty: all)."""
    target_transport: str | None = None
    """HOST_BLOCK: "tcp" | "udp" | None (any)."""
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
        optional: dict[str, object] = {
            "reset_side": self.reset_side,
            "reset_mode": self.reset_mode,
            "after_packets": self.after_packets,
            "rate_bps": self.rate_bps,
            "burst_bytes": self.burst_bytes,
            "loss": self.loss,
            "freeze_bytes": self.freeze_bytes,
            "duration_s": self.duration_s,
            "target_set": self.target_set,
            "target_transport": self.target_transport,
            "idle_timeout_s": self.idle_timeout_s,
            "hard_timeout_s": self.hard_timeout_s,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.target_ports:
            out["target_ports"] = list(self.target_ports)
        if self.action in (Action.POLICE, Action.RANDOM_LOSS, Action.FREEZE_AFTER_BYTES):
            out["direction"] = self.direction
        if self.scope != "flow":
            out["scope"] = self.scope
        return out

    def short(self) -> str:
        """One-line summary for tables: the action and its main parameter."""
        a = self.action
        if a is Action.RESET:
            text = f"reset {self.reset_side} ({self.reset_mode})"
        elif a is Action.DROP_AFTER:
            text = f"drop after {self.after_packets}"
        elif a is Action.POLICE:
            text = f"police {self.rate_bps} bps/{self.burst_bytes} B {self.direction}"
        elif a is Action.RANDOM_LOSS:
            text = f"random loss {self.loss} {self.direction}"
        elif a is Action.FREEZE_AFTER_BYTES:
            text = f"freeze after {self.freeze_bytes} B"
        elif a is Action.HOST_BLOCK:
            text = f"host block {self.scope} -> {self.target_set} for {self.duration_s} s"
        else:
            text = str(a)
        return text if self.final else text + " (pending)"
