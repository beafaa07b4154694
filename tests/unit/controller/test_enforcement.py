"""Every verdict type → switch plan → OpenFlow bytes → the switch model: what each direction does."""

from __future__ import annotations

import pytest

from tests.unit.fakeoftable import FakeOFTable, Pkt
from tspulab.controllers.enforcement import (
    FREEZE_RATE_KBPS,
    SwitchPlan,
    plan_for,
    switch_can_take_over,
)
from tspulab.controllers.ofmsgs import flow_mod, meter_mod
from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    COOKIE_JUDGED,
    FlowEndpoints,
    TspuPorts,
    tspu_rules,
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

SUB, SRV = "10.0.0.2", "93.184.216.34"
EP = FlowEndpoints(6, SUB, 40000, SRV, 443)
UP = Pkt(1, SUB, SRV)
DOWN = Pkt(2, SRV, SUB, sport=443, dport=40000)


def _switch(plan: SwitchPlan) -> FakeOFTable:
    base = tspu_rules([], TspuPorts(1, 2), inspect=True)
    msgs = [*(flow_mod(r) for r in base), *(meter_mod(m) for m in plan.meters)]
    ft = FakeOFTable().apply([*msgs, *(flow_mod(r) for r in plan.rules)])
    assert ft.errors == []
    return ft


def _plan(v: Verdict, fate: Fate = Fate.FORWARD) -> SwitchPlan:
    return plan_for(EP, v, fate, [11, 12])


@pytest.mark.parametrize(
    ("verdict", "up", "down"),
    [
        (Allow(True, "", None, idle_timeout_s=600.0), [2], [1]),
        (Detect(True, "", "r"), [2], [1]),
        (HostBlock(True, "", "r", duration_s=600.0, target_set="ovh"), [2], [1]),
        (Drop(True, "", "r"), [], []),
    ],
)
def test_forward_and_drop(verdict: Verdict, up: list[int], down: list[int]) -> None:
    ft = _switch(_plan(verdict, Fate.DROP if isinstance(verdict, Drop) else Fate.FORWARD))
    assert (ft.outputs(UP), ft.outputs(DOWN)) == (up, down)
    assert ft.outputs(Pkt(1, SUB, SRV, sport=40001)) == [CONTROLLER_PORT], "only this flow"


def test_police_meters_each_policed_direction() -> None:
    v = Police(True, "", "r", rate_bps=130_000, burst_bytes=16_384, direction="server-to-client")
    plan = _plan(v)
    ft = _switch(plan)
    assert ft.process(UP).meters == [] and ft.process(DOWN).meters == [plan.meters[0].meter_id]
    assert (ft.outputs(UP), ft.outputs(DOWN)) == ([2], [1])
    band = ft.meters[plan.meters[0].meter_id][0]
    assert (band.rate, band.burst_size) == (130, 132)  # kbit/s, kbit (16 KiB)
    both = _switch(_plan(Police(True, "", "r", rate_bps=130_000, burst_bytes=16_384)))
    assert len(both.meters) == 2


def test_freeze_meters_server_to_client_only() -> None:
    plan = _plan(FreezeAfterBytes(True, "", "r", freeze_bytes=16_384))
    ft = _switch(plan)
    [meter] = plan.meters
    assert ft.process(DOWN).meters == [meter.meter_id] and ft.process(UP).meters == []
    assert ft.meters[meter.meter_id][0].rate == FREEZE_RATE_KBPS


def test_random_loss_forwards_and_hands_the_loss_to_nftables() -> None:
    plan = _plan(RandomLoss(True, "", "r", loss=0.3, direction="client-to-server"))
    ft = _switch(plan)
    assert (ft.outputs(UP), ft.outputs(DOWN)) == ([2], [1])
    assert [(loss.direction, loss.probability) for loss in plan.losses] == [("up", 0.3)]


@pytest.mark.parametrize(
    "verdict",
    [
        DropAfter(True, "", "sni-ii", after_packets=5),
        Reset(True, "", "sni-i", reset_side="client", reset_mode="rewrite"),
    ],
)
def test_counted_verdicts_stay_on_the_controller_until_the_engine_drops(verdict: Verdict) -> None:
    assert not switch_can_take_over(verdict, Fate.FORWARD)
    assert not switch_can_take_over(verdict, Fate.RESET)
    assert switch_can_take_over(verdict, Fate.DROP)
    ft = _switch(_plan(verdict, Fate.DROP))
    assert (ft.outputs(UP), ft.outputs(DOWN)) == ([], [])


def test_pending_verdicts_are_not_pushed() -> None:
    assert not switch_can_take_over(Allow(False, "", None), Fate.FORWARD)


def test_timeouts_reach_the_switch_in_whole_seconds() -> None:
    plan = _plan(Drop(True, "", "r", idle_timeout_s=0.2, hard_timeout_s=589.1))
    ft = _switch(plan)
    judged = ft.cookies(COOKIE_JUDGED)
    assert {(e.idle_timeout, e.hard_timeout) for e in judged} == {(1, 590)}
    assert [bool(e.flags) for e in judged] == [True, False], "FlowRemoved for client→server"
