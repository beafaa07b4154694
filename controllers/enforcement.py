"""From the engine's verdict on a flow to switch state: which rules, meters and loss rules.

Pure (no os-ken, no switch). The engine (tspulab.dpi.engine) decides and also knows the fate of
each packet it sees; this module says when the switch can take a flow over and how:

=================== ===================================================================
allow, detect       both directions forwarded in `judged` (idle timeout = state expiry)
drop                both directions dropped in `judged`
police              an OpenFlow meter (drop band: rate, burst) per policed direction
random-loss         forwarded in `judged`; the loss is an nftables `numgen random` drop
                    on the TSPU switch's egress port for that direction (OpenFlow 1.3 has
                    no per-packet random drop: select groups hash per flow)
freeze-after-bytes  server→client through a meter whose burst is the byte allowance and
                    whose rate is the smallest OVS accepts; client→server forwarded
host-block          the triggering flow is forwarded; the policy then judges the
                    subscriber's new flows to the blocked set as drop, with the block's
                    remaining time as the rules' hard timeout
drop-after (SNI-II) stays on the controller path until the engine's count says drop
reset (SNI-I)       stays on the controller path until the engine turns a packet into
                    the RST; then both directions are dropped
=================== ===================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tspulab.controllers.pipeline import (
    Direction,
    DirectionTreatment,
    FlowEndpoints,
    FlowRule,
    MeterSpec,
    judged_rules,
)
from tspulab.dpi.verdict import (
    Allow,
    Detect,
    Drop,
    DropAfter,
    Fate,
    FreezeAfterBytes,
    HostBlock,
    Police,
    RandomLoss,
    Reset,
    Verdict,
)

#: The smallest meter rate OpenFlow can express (1 kbit/s): after the burst, a full-size
#: segment needs ~12 s of tokens, so the transfer is frozen for practical purposes.
FREEZE_RATE_KBPS = 1


@dataclass(frozen=True)
class LossRule:
    """Random loss of one direction of one flow, applied where the switch sends it out."""

    ep: FlowEndpoints
    direction: Direction
    probability: float


@dataclass(frozen=True)
class LossAdd:
    """Work for the nftables worker: start dropping a share of one direction of one flow."""

    loss: LossRule


@dataclass(frozen=True)
class LossRemove:
    """Work for the nftables worker: a flow's loss rules go (its judged rules expired)."""

    ep: FlowEndpoints


LossWork = LossAdd | LossRemove


@dataclass
class SwitchPlan:
    rules: list[FlowRule] = field(default_factory=list)
    meters: list[MeterSpec] = field(default_factory=list)
    losses: list[LossRule] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.rules or self.meters or self.losses)


def _seconds(value: float | None) -> int:
    """OpenFlow timeouts are whole seconds (0 = none); never round a timer down to 'none'."""
    if value is None or value <= 0:
        return 0
    return min(65535, max(1, math.ceil(value)))


# isinstance() with tuples: a `A | B` union is rebuilt on every call (measured: 10 % of the
# controller's CPU in plan_for alone)
_COUNTED = (DropAfter, Reset)
_FORWARDED = (Allow, Detect, HostBlock)
_DROPPED = (Drop, DropAfter, Reset)


def switch_can_take_over(verdict: Verdict, fate: Fate) -> bool:
    """Whether this decision can be pushed into the switch now (no more packet-ins needed)."""
    if not verdict.final:
        return False
    if isinstance(verdict, _COUNTED):
        return fate is Fate.DROP  # the engine's count is spent / the RST has been sent
    return True


def _directions(direction: str) -> tuple[bool, bool]:
    """(client→server affected, server→client affected)."""
    return direction in ("both", "client-to-server"), direction in ("both", "server-to-client")


def _kbps(bits_per_second: int) -> int:
    return max(1, round(bits_per_second / 1000))


def _kbits(n_bytes: int) -> int:
    return max(1, math.ceil(n_bytes * 8 / 1000))


def plan_for(
    ep: FlowEndpoints,
    verdict: Verdict,
    fate: Fate,
    meter_ids: list[int],
) -> SwitchPlan:
    """Switch state for a flow whose verdict the switch can carry (`switch_can_take_over`).

    `meter_ids` supplies fresh meter ids (popped as used).
    """
    idle = _seconds(verdict.idle_timeout_s)
    hard = _seconds(verdict.hard_timeout_s)
    fwd, drop = DirectionTreatment("forward"), DirectionTreatment("drop")
    plan = SwitchPlan()
    if isinstance(verdict, _FORWARDED):
        up, down = fwd, fwd
    elif isinstance(verdict, _DROPPED):
        up, down = drop, drop
    elif isinstance(verdict, Police):
        rate, burst = _kbps(verdict.rate_bps), _kbits(verdict.burst_bytes)
        treat = []
        for policed in _directions(verdict.direction):
            if policed:
                meter = MeterSpec(meter_ids.pop(), rate, burst)
                plan.meters.append(meter)
                treat.append(DirectionTreatment("meter", meter.meter_id))
            else:
                treat.append(fwd)
        up, down = treat[0], treat[1]
    elif isinstance(verdict, FreezeAfterBytes):
        meter = MeterSpec(meter_ids.pop(), FREEZE_RATE_KBPS, _kbits(verdict.freeze_bytes))
        plan.meters.append(meter)
        up, down = fwd, DirectionTreatment("meter", meter.meter_id)
    elif isinstance(verdict, RandomLoss):
        up, down = fwd, fwd
        for direction, lossy in zip(("up", "down"), _directions(verdict.direction), strict=True):
            if lossy:
                plan.losses.append(LossRule(ep, direction, verdict.loss))
    else:  # a new verdict type must be mapped here before it can be enforced
        raise ValueError(f"no switch mapping for {verdict.action}")
    plan.rules = judged_rules(ep, up, down, idle_timeout=idle, hard_timeout=hard)
    return plan
