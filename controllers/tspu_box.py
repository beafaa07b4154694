"""One TSPU box: the state the controller keeps for one TSPU switch (one ISP).

An engine (profile, registry, subscriber networks, time scale), the flows already pushed into the
switch with their meters and loss rules, and the counters the control channel reports. The app in
`tspu.py` holds one box per TSPU switch and moves messages; the box decides what to send.
"""

from __future__ import annotations

import itertools
import socket
import threading
from typing import Any

from tspulab.controllers.config import TspuConfig, read_registry
from tspulab.controllers.enforcement import SwitchPlan, plan_for, switch_can_take_over
from tspulab.controllers.nftloss import NftLoss
from tspulab.controllers.pipeline import (
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    PRIORITY_HOST_BLOCK,
    FlowEndpoints,
    FlowRule,
    GotoTable,
    tspu_rules,
)
from tspulab.dpi.engine import Decision, TspuEngine, engine_for
from tspulab.dpi.flow import FlowState
from tspulab.dpi.profile import Profile, load_profile
from tspulab.dpi.registry import Registry

COOKIE_BYPASS = 0x7370_0006


def profile_inspects(profile: Profile) -> bool:
    """False when every rule is a plain registry address match: the switch's registry table does
    it all and no packet needs to climb to the controller (the 2018 IP-blocking profile)."""
    for rule in profile.rules:
        fields = rule.when.model_fields_set - {"address_in"}
        if fields or rule.when.address_in not in (None, "registry"):
            return True
    return False


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def endpoints(flow: FlowState) -> FlowEndpoints:
    return FlowEndpoints(
        flow.proto, _addr(flow.client_addr), flow.client_port,
        _addr(flow.server_addr), flow.server_port,
    )  # fmt: skip


def bypass_rules(addresses: tuple[str, ...]) -> list[FlowRule]:
    """Partial coverage (§1, load balancing): these subscribers' traffic skips the TSPU."""
    rules = []
    for address in addresses:
        eth = ETH_TYPE_IPV4 if ":" not in address else ETH_TYPE_IPV6
        prefix = "ipv4" if eth == ETH_TYPE_IPV4 else "ipv6"
        for field_name in (f"{prefix}_src", f"{prefix}_dst"):
            rules.append(
                FlowRule(
                    table="registry",
                    priority=PRIORITY_HOST_BLOCK + 100,
                    match=(("eth_type", eth), (field_name, address)),
                    actions=(GotoTable("forward"),),
                    cookie=COOKIE_BYPASS,
                    kind="miss",
                )
            )
    return rules


class TspuBox:
    def __init__(self, config: TspuConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.registry = read_registry(config.registry_file) if config.registry_file else Registry()
        self.engine: TspuEngine | None = None
        self.inspects = False
        self.profile_name = config.profile
        if config.profile:
            self.set_profile(config.profile)
        self.installed: dict[object, tuple[FlowEndpoints, SwitchPlan]] = {}
        self.logged: set[object] = set()
        self.meter_ids = itertools.count(1)
        self.packet_ins = 0
        self.detections_logged = 0
        self.nft = (
            NftLoss(config.nft_table, config.subscriber_if, config.upstream_if)
            if config.nft_table
            else None
        )

    def set_profile(self, name: str) -> None:
        """Load a profile; flows judged so far keep their switch rules until they expire."""
        profile = load_profile(name)
        self.engine = engine_for(
            profile, self.registry, self.config.subscriber_nets, self.config.time_scale,
            self.config.profile_sets,
        )  # fmt: skip
        self.inspects = profile_inspects(profile)
        self.profile_name = name

    def initial_rules(self) -> list[FlowRule]:
        prefixes = self.registry.aggregated_prefixes()
        rules = tspu_rules(prefixes, self.config.ports, inspect=self.inspects)
        return [*rules, *bypass_rules(self.config.bypass_hosts)]

    def judge(self, frame: bytes, now: float, from_sub: bool) -> Decision:
        assert self.engine is not None
        self.packet_ins += 1
        return self.engine.process(frame, now, from_subscriber_side=from_sub)

    def verdict_event(self, d: Decision) -> dict[str, Any] | None:
        """The `verdict` log line, once per flow, when its verdict first becomes final."""
        flow, verdict = d.flow, d.verdict
        if flow is None or not verdict.final or flow.key in self.logged:
            return None
        self.logged.add(flow.key)
        c = d.classification
        return {
            "tspu": self.config.name,
            "flow": endpoints(flow).__dict__,
            "inside": flow.initiated_inside,
            "protocol": str(c.protocol) if c is not None else None,
            "sni": c.sni if c is not None else None,
            "verdict": verdict.to_json(),
            "packet_ins": flow.packets,
        }

    def take_over(self, d: Decision) -> SwitchPlan | None:
        """Switch state for the flow if the switch can carry it from now on, else None."""
        flow = d.flow
        if flow is None or flow.key in self.installed:
            return None
        if not switch_can_take_over(d.verdict, d.fate):
            return None
        ep = endpoints(flow)
        plan = plan_for(ep, d.verdict, d.fate, [next(self.meter_ids) for _ in range(2)])
        if self.nft is not None:
            for loss in plan.losses:
                self.nft.add(loss)
        self.installed[flow.key] = (ep, plan)
        return plan

    def new_detections(self) -> list[dict[str, Any]]:
        assert self.engine is not None
        fresh = self.engine.detections[self.detections_logged :]
        self.detections_logged = len(self.engine.detections)
        return [{"tspu": self.config.name, **e.__dict__} for e in fresh]

    def forget(self, match: dict[str, Any]) -> tuple[FlowEndpoints, SwitchPlan] | None:
        """A judged rule expired in the switch: drop the bookkeeping (and loss rules)."""
        for key, (ep, plan) in list(self.installed.items()):
            if plan.rules and plan.rules[0].match_dict() == match:
                del self.installed[key]
                self.logged.discard(key)
                if self.nft is not None and plan.losses:
                    self.nft.remove_flow(ep)
                return ep, plan
        return None

    def set_registry(self, registry: Registry) -> None:
        self.registry = registry
        if self.engine is not None:
            self.engine.set_registry(registry)
