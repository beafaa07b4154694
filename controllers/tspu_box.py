"""One TSPU box: everything the controller knows and decides for one TSPU switch (one ISP).

`TspuBox.handle(now, event)` takes an event of `switch_events` and returns what must happen: the
OpenFlow messages to send (built without a switch, `ofmsgs`), packet-outs and crafted RSTs
included, and nftables work for the loss worker (`enforcement.LossAdd` / `LossRemove`). The box
sends nothing, starts no process and reads no clock: the app in `tspu.py` moves what it returns,
and tests apply the messages to a flow table model (tests/unit/fakeoftable.py). FAUCET's shape:
faucet.py is thin, valve.py decides.

What the box owns, and nothing else does:
- the engine (profile, registry, subscriber networks, time scale) and its counters;
- the flows pushed into the switch (`installed`: endpoints, rules, meters, losses, when), indexed
  by the endpoints of the rule whose expiry the switch reports, so a FlowRemoved is one lookup;
- on every (re)connect it rebuilds the whole switch from this state: pipeline, registry, and every
  judged flow still alive (host blocks with their remaining time). A switch that restarted, or a
  controller connection that dropped, loses nothing the box decided.
"""

from __future__ import annotations

import itertools
import math
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tspulab.controllers import craft, ofmsgs
from tspulab.controllers.config import TspuConfig, read_registry
from tspulab.controllers.enforcement import (
    LossAdd,
    LossRemove,
    SwitchPlan,
    plan_for,
    switch_can_take_over,
)
from tspulab.controllers.mirror import NONE as NO_MIRROR
from tspulab.controllers.mirror import Mirror, mirror_plan, profile_inspects
from tspulab.controllers.pipeline import (
    COOKIE_MIRROR,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    FlowEndpoints,
    FlowRule,
    registry_rules,
    tspu_rules,
)
from tspulab.controllers.switch_events import (
    BarrierReply,
    Event,
    FlowRemoved,
    PacketIn,
    ProfileChange,
    RegistryChange,
    SwitchDown,
    SwitchError,
    SwitchUp,
)
from tspulab.dpi.engine import Decision, TspuEngine, engine_for
from tspulab.dpi.flow import FlowState
from tspulab.dpi.profile import load_profile
from tspulab.dpi.registry import Registry, diff
from tspulab.dpi.verdict import Fate, Reset

#: what the box returns: OpenFlow messages (os-ken objects, datapath unset) and loss work
Output = Any
EventSink = Callable[..., None]

_REMOVED_BY_TIMEOUT = (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_HARD_TIMEOUT)


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def endpoints(flow: FlowState) -> FlowEndpoints:
    return FlowEndpoints(
        flow.proto, _addr(flow.client_addr), flow.client_port,
        _addr(flow.server_addr), flow.server_port,
    )  # fmt: skip


def removed_endpoints(match: Any) -> FlowEndpoints | None:
    """The endpoints of a judged client→server rule, from a FlowRemoved's match."""
    get = match.get
    proto = get("ip_proto")
    l4 = {IP_PROTO_TCP: "tcp", IP_PROTO_UDP: "udp"}.get(proto)
    src, dst = get("ipv4_src") or get("ipv6_src"), get("ipv4_dst") or get("ipv6_dst")
    if l4 is None or src is None or dst is None:
        return None
    sport, dport = get(f"{l4}_src"), get(f"{l4}_dst")
    if sport is None or dport is None:
        return None
    return FlowEndpoints(proto, str(src), int(sport), str(dst), int(dport))


@dataclass(frozen=True)
class Installed:
    """A flow the switch carries: what was sent for it, and when."""

    key: object
    ep: FlowEndpoints
    plan: SwitchPlan
    at: float


class TspuBox:
    def __init__(self, config: TspuConfig, log: EventSink | None = None) -> None:
        self.config = config
        #: the app's event thread and the control thread both call `handle`
        self.lock = threading.Lock()
        self.log: EventSink = log or (lambda event, **fields: None)
        self.registry = read_registry(config.registry_file) if config.registry_file else Registry()
        self.engine: TspuEngine | None = None
        self.inspects = False
        self.mirror: Mirror = NO_MIRROR
        self.profile_name = config.profile
        if config.profile:
            self._load_profile(config.profile)
        self.installed: dict[object, Installed] = {}
        self._by_removed_rule: dict[FlowEndpoints, object] = {}
        self.meter_ids = itertools.count(1)
        self.connected = False
        self.counters: Counter[str] = Counter()
        self._install_started: float | None = None
        #: (prefixes added, removed) by the last registry change, for the control channel's reply
        self.last_registry_change = (0, 0)

    # --- the one entry point -----------------------------------------------------------------

    def handle(self, now: float, event: Event) -> list[Output]:
        """What to do about `event` at `now` (seconds): messages for the switch, loss work."""
        if isinstance(event, PacketIn):
            return self._packet_in(now, event)
        if isinstance(event, FlowRemoved):
            return self._flow_removed(event)
        if isinstance(event, SwitchUp):
            return self._switch_up(now)
        if isinstance(event, SwitchDown):
            self.connected = False  # the box keeps its flows: the next SwitchUp restores them
            return []
        if isinstance(event, SwitchError):
            return self._switch_error(event)
        if isinstance(event, BarrierReply):
            if self._install_started is not None:
                seconds = round(now - self._install_started, 4)
                self.log("tspu-rules-installed", dpid=self.config.dpid, seconds=seconds)
                self._install_started = None
            return []
        if isinstance(event, RegistryChange):
            return self._registry_change(now, event)
        if isinstance(event, ProfileChange):
            return self._profile_change(event.name)
        raise TypeError(f"not a box event: {event!r}")

    def stats(self) -> dict[str, int]:
        return {"packet_ins": self.counters["packet_ins"], "judged": len(self.installed),
                **{k: v for k, v in self.counters.items() if k != "packet_ins"}}  # fmt: skip

    # --- the switch's contents -----------------------------------------------------------------

    def initial_rules(self) -> list[FlowRule]:
        rules: list[FlowRule] = tspu_rules(
            self.registry.aggregated_prefixes(), self.config.ports, inspect=self.inspects,
            mirror=self.mirror, bypass=self.config.bypass_hosts,
        )  # fmt: skip
        return rules

    def _switch_up(self, now: float) -> list[Output]:
        """Rebuild the switch: wipe it, then pipeline, registry and every live judged flow."""
        self.connected = True
        rules = self.initial_rules()
        out: list[Output] = [ofmsgs.delete_all_flows(), ofmsgs.delete_all_meters()]
        out += [ofmsgs.flow_mod(rule) for rule in rules]
        restored = 0
        for inst in list(self.installed.values()):
            plan = _remaining(inst.plan, now - inst.at)
            if plan is None:  # a hard timeout ran out while the switch was away
                out += self._drop_installed(inst)
                continue
            out += [ofmsgs.meter_mod(m) for m in plan.meters]
            out += [ofmsgs.flow_mod(r) for r in plan.rules]
            restored += 1
        out.append(ofmsgs.barrier())
        self._install_started = now
        self.log(
            "tspu-rules-sent", dpid=self.config.dpid, tspu=self.config.name, rules=len(rules),
            registry_prefixes=len(self.registry.aggregated_prefixes()), inspects=self.inspects,
            mirror=asdict(self.mirror), profile=self.profile_name, restored_flows=restored,
        )  # fmt: skip
        if restored:
            self.counters["restored_flows"] += restored
        return out

    # --- the inspection path --------------------------------------------------------------------

    def _packet_in(self, now: float, ev: PacketIn) -> list[Output]:
        self.counters["packet_ins"] += 1
        engine = self.engine
        if engine is None:
            return self._refuse("unexpected_packet_in", "no profile inspects here")
        ports = self.config.ports
        if ev.in_port not in (ports.subscriber, ports.upstream):
            return self._refuse("unknown_port", f"in_port {ev.in_port} is not a TSPU port")
        if ev.total_len > len(ev.data):
            return self._refuse(
                "truncated_packet_in", f"{len(ev.data)} of {ev.total_len} bytes", ev.in_port
            )
        in_port = ev.in_port
        from_sub = in_port == ports.subscriber
        out_port = ports.upstream if from_sub else ports.subscriber
        try:
            d = engine.process(ev.data, now, from_subscriber_side=from_sub)
        except Exception as exc:  # a DPI bug must not stop the other flows (and switches)
            return self._refuse("engine_error", repr(exc), in_port)
        mirrored = ev.cookie == COOKIE_MIRROR
        if mirrored:
            self.counters["mirrored"] += 1
        # Rules first: the switch handles messages in order, so the reply to the packet released
        # below meets the flow's rule instead of climbing to the controller.
        out = self._take_over(d, now)
        if not mirrored:
            out += self._carry_out(d, ev.data, in_port, out_port)
        elif d.fate is not Fate.FORWARD:  # mirror_plan() rules this out; count it if it happens
            self.counters["mirrored_not_forwarded"] += 1
        if d.first_final and d.flow is not None:
            self.log("verdict", **self._verdict_event(d))
        for e in engine.drain_detections():
            self.log("detect", tspu=self.config.name, **asdict(e))
        return out

    def _refuse(self, counter: str, why: str, in_port: int | None = None) -> list[Output]:
        """Count and log a packet-in the box cannot judge; it is not forwarded."""
        self.counters[counter] += 1
        if self.counters[counter] <= 10 or self.counters[counter] % 1000 == 0:
            self.log(
                "packet-in-refused", tspu=self.config.name, why=counter, detail=why,
                in_port=in_port, count=self.counters[counter],
            )  # fmt: skip
        return []

    def _verdict_event(self, d: Decision) -> dict[str, Any]:
        flow, c = d.flow, d.classification
        assert flow is not None
        return {
            "box": "tspu",  # beside an ISP's old filter's `old-filter-verdict` (box "old-filter")
            "tspu": self.config.name,
            "flow": endpoints(flow).__dict__,
            "inside": flow.initiated_inside,
            "protocol": str(c.protocol) if c is not None else None,
            "sni": c.sni if c is not None else None,
            "verdict": d.verdict.to_json(),
            "packet_ins": flow.packets,
        }

    def _take_over(self, d: Decision, now: float) -> list[Output]:
        """Push the flow into the switch if the switch can carry it from now on."""
        flow = d.flow
        if flow is None or flow.key in self.installed:
            return []
        if flow.proto not in (IP_PROTO_TCP, IP_PROTO_UDP):
            return []  # judged rules match ports; the inspect table never sends other protocols
        if not switch_can_take_over(d.verdict, d.fate):
            return []
        ep = endpoints(flow)
        plan = plan_for(ep, d.verdict, d.fate, [next(self.meter_ids) for _ in range(2)])
        self.installed[flow.key] = Installed(flow.key, ep, plan, now)
        self._by_removed_rule[ep] = flow.key
        out: list[Output] = [ofmsgs.meter_mod(m) for m in plan.meters]
        out += [ofmsgs.flow_mod(r) for r in plan.rules]
        out += [LossAdd(loss) for loss in plan.losses]
        return out

    def _carry_out(self, d: Decision, frame: bytes, in_port: int, out_port: int) -> list[Output]:
        """The packet-outs of this packet's fate: itself, a RST in its place, or RSTs beside."""
        if d.fate is Fate.FORWARD:
            return [ofmsgs.packet_out(frame, in_port, out_port)]
        if d.fate is not Fate.RESET or not isinstance(d.verdict, Reset):
            return []
        v = d.verdict
        if v.reset_mode == "rewrite":
            rst = craft.rst_replacing(frame)
            return [ofmsgs.packet_out(rst, in_port, out_port)] if rst is not None else []
        # inject: the trigger is dropped; RSTs go to the side(s) the profile names
        from_client = d.flow is not None and d.flow.from_client
        out = []
        for wanted, towards_sender in (
            (v.reset_side in ("client", "both"), from_client),
            (v.reset_side in ("server", "both"), not from_client),
        ):
            if not wanted:
                continue
            rst = craft.rst_to_sender(frame) if towards_sender else craft.rst_to_receiver(frame)
            if rst is not None:
                out.append(ofmsgs.packet_out(rst, in_port, in_port if towards_sender else out_port))
        return out

    def _flow_removed(self, ev: FlowRemoved) -> list[Output]:
        """The switch timed a judged flow out: free its meters, loss rules and bookkeeping.

        Removals the box caused itself (the wipe of a reconnect, a strict delete) are ignored:
        the box already knows, and a reconnect has just re-installed the flow."""
        if ev.reason not in _REMOVED_BY_TIMEOUT:
            return []
        ep = removed_endpoints(ev.match)
        key = self._by_removed_rule.get(ep) if ep is not None else None
        inst = self.installed.get(key) if key is not None else None
        if inst is None:
            self.counters["flow_removed_unknown"] += 1
            return []
        self.log("flow-expired", tspu=self.config.name, flow=ep.__dict__, reason=ev.reason)
        # the other direction's rule may still be alive (one-way traffic): it goes too
        return [ofmsgs.flow_mod(r, "delete") for r in inst.plan.rules[1:]] + self._drop_installed(
            inst
        )

    def _drop_installed(self, inst: Installed) -> list[Output]:
        del self.installed[inst.key]
        self._by_removed_rule.pop(inst.ep, None)
        out: list[Output] = [ofmsgs.meter_mod(m, "delete") for m in inst.plan.meters]
        if inst.plan.losses:
            out.append(LossRemove(inst.ep))
        return out

    def _switch_error(self, ev: SwitchError) -> list[Output]:
        """Log and count what the switch refused; the box goes on serving."""
        type_name = _error_name(ev.type)
        self.counters["switch_errors"] += 1
        self.counters[f"switch_error:{type_name}:{ev.code}"] += 1
        refused = None
        if len(ev.data) >= 8:  # the offending message's header: which kind it was
            refused = {
                "version": ev.data[0],
                "type": ev.data[1],
                "xid": int.from_bytes(ev.data[4:8]),
            }
        self.log(
            "switch-error", tspu=self.config.name, dpid=self.config.dpid, type=type_name,
            code=ev.code, refused=refused, count=self.counters["switch_errors"],
        )  # fmt: skip
        return []

    # --- run-time changes ------------------------------------------------------------------------

    def _registry_change(self, now: float, ev: RegistryChange) -> list[Output]:
        """A new registry version as a diff: the new prefixes' rules are added before the old
        ones are deleted (no address is briefly unblocked); judged flows are left alone."""
        change = diff(self.registry, ev.registry)
        self.last_registry_change = (len(change.add_prefixes), len(change.remove_prefixes))
        self.registry = ev.registry
        if self.engine is not None:
            self.engine.set_registry(ev.registry)
        if not self.connected:
            return []  # the next SwitchUp installs the new registry whole
        out: list[Output] = [ofmsgs.flow_mod(r) for r in registry_rules(change.add_prefixes)]
        out += [ofmsgs.flow_mod(r, "delete") for r in registry_rules(change.remove_prefixes)]
        out.append(ofmsgs.barrier())
        self.log("registry-rules-sent", tspu=self.config.name, added=len(change.add_prefixes),
                 removed=len(change.remove_prefixes))  # fmt: skip
        self.counters["registry_updates"] += 1
        return out

    def _profile_change(self, name: str) -> list[Output]:
        """Load a profile; flows judged so far keep their switch rules until they expire. The
        inspect table follows the profile (a registry-only profile sends nothing up)."""
        before = set(self.initial_rules())
        self._load_profile(name)
        after = set(self.initial_rules())
        self.log("profile-change", tspu=self.config.name, profile=name)
        if not self.connected:
            return []
        return [ofmsgs.flow_mod(r) for r in after - before] + [
            ofmsgs.flow_mod(r, "delete") for r in before - after
        ]

    def _load_profile(self, name: str) -> None:
        profile = load_profile(name)
        # the run's lists fill the sets this profile has (a profile changed at run time may
        # not have them all)
        sets = {k: v for k, v in self.config.profile_sets.items() if k in profile.sets}
        if len(sets) < len(self.config.profile_sets):
            unused = sorted(set(self.config.profile_sets) - set(sets))
            self.log("profile-sets-unused", tspu=self.config.name, profile=name, sets=unused)
        self.engine = engine_for(
            profile, self.registry, self.config.subscriber_nets, self.config.time_scale, sets
        )
        self.inspects = profile_inspects(profile)
        self.mirror = mirror_plan(profile)
        self.profile_name = name


def _remaining(plan: SwitchPlan, elapsed: float) -> SwitchPlan | None:
    """The plan as it must be re-installed `elapsed` seconds after it first was: hard timeouts
    shortened by the time gone; None when one has run out."""
    rules = []
    for rule in plan.rules:
        if rule.hard_timeout:
            left = math.ceil(rule.hard_timeout - elapsed)
            if left <= 0:
                return None
            rule = replace(rule, hard_timeout=left)
        rules.append(rule)
    return SwitchPlan(rules=rules, meters=plan.meters, losses=plan.losses)


def _error_name(error_type: int) -> str:
    try:
        return str(ofp.ofp_error_type_to_str(error_type)).split("(")[0]
    except Exception:
        return str(error_type)
