"""The TSPU middlebox as an os-ken (Ryu API) app.

When the TSPU switch connects, the app installs the pipeline of `pipeline.py`: the registry's
aggregated prefixes as drop rules, and, when the behaviour profile inspects bytes, a rule sending
TCP/UDP packets of flows not yet judged to the controller. Each such packet goes through the
pure engine (`tspulab.dpi.engine.TspuEngine`, the same object `tspulab replay --profile` uses);
the packet's fate (forward, drop, a crafted RST) is carried out with a packet-out, and once the
verdict is final the flow is pushed into the switch (`enforcement.plan_for`): judged rules,
meters, loss rules. From then on none of the flow's packets reach the controller.

The app stays thin (STYLE.md): decisions come from the engine, rule descriptions from pure
modules; this file only moves messages and keeps per-flow bookkeeping.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3

from tspulab.controllers import craft
from tspulab.controllers.config import ControllerConfig, read_registry
from tspulab.controllers.control import ControlServer
from tspulab.controllers.enforcement import SwitchPlan, plan_for, switch_can_take_over
from tspulab.controllers.events import EventLog, guarded
from tspulab.controllers.nftloss import NftLoss
from tspulab.controllers.ofmsgs import delete_all_flows, delete_all_meters, flow_mod, meter_mod
from tspulab.controllers.pipeline import FlowEndpoints, registry_rules, tspu_rules
from tspulab.dpi.engine import Decision, TspuEngine, engine_for
from tspulab.dpi.flow import FlowState
from tspulab.dpi.profile import Profile, load_profile
from tspulab.dpi.registry import Registry, diff
from tspulab.dpi.verdict import Fate


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


class TspuApp(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = ControllerConfig.from_env()
        self.event_log = EventLog(self.config.events_log)
        self.datapaths: dict[int, Any] = {}
        self._install_started: dict[int, float] = {}
        self._lock = threading.Lock()
        self.engine: TspuEngine | None = None
        self.inspects = False
        self.registry = Registry()
        self.installed: dict[object, tuple[FlowEndpoints, SwitchPlan]] = {}
        self.logged: set[object] = set()
        self.meter_ids = itertools.count(1)
        self.packet_ins = 0
        self.detections_logged = 0
        self.nft: NftLoss | None = None
        tspu = self.config.tspu
        if tspu is None:
            return
        if tspu.registry_file is not None:
            self.registry = read_registry(tspu.registry_file)
        if tspu.profile:
            profile = load_profile(tspu.profile)
            self.engine = engine_for(
                profile, self.registry, tspu.subscriber_nets, tspu.time_scale, tspu.profile_sets
            )
            self.inspects = profile_inspects(profile)
        if tspu.nft_table:
            self.nft = NftLoss(tspu.nft_table, tspu.subscriber_if, tspu.upstream_if)
        if tspu.control_socket is not None:
            self.control = ControlServer(tspu.control_socket, self._command)

    def _is_tspu(self, datapath: Any) -> bool:
        return self.config.tspu is not None and datapath.id == self.config.tspu.dpid

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        if not self._is_tspu(datapath):
            return
        assert self.config.tspu is not None
        tspu = self.config.tspu
        started = time.monotonic()
        rules = tspu_rules(tspu.registry_prefixes, tspu.ports, inspect=self.inspects)
        datapath.send_msg(delete_all_flows(datapath))
        datapath.send_msg(delete_all_meters(datapath))
        for rule in rules:
            datapath.send_msg(flow_mod(datapath, rule))
        self._install_started[datapath.id] = started
        datapath.send_msg(datapath.ofproto_parser.OFPBarrierRequest(datapath))
        self.event_log.write(
            "tspu-rules-sent",
            dpid=datapath.id,
            rules=len(rules),
            registry_prefixes=len(tspu.registry_prefixes),
            inspects=self.inspects,
            profile=tspu.profile,
        )

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def barrier_reply(self, ev: Any) -> None:
        dpid = ev.msg.datapath.id
        started = self._install_started.pop(dpid, None)
        if started is not None:
            self.event_log.write(
                "tspu-rules-installed", dpid=dpid, seconds=round(time.monotonic() - started, 4)
            )

    # --- the inspection path ------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        datapath = msg.datapath
        if not self._is_tspu(datapath):
            return
        assert self.config.tspu is not None
        ports = self.config.tspu.ports
        in_port = msg.match["in_port"]
        if self.engine is None:
            self.event_log.write("tspu-unexpected-packet-in", dpid=datapath.id)
            return
        from_sub = in_port == ports.subscriber
        out_port = ports.upstream if from_sub else ports.subscriber
        frame = bytes(msg.data)
        with self._lock:
            self.packet_ins += 1
            decision = self.engine.process(frame, time.time(), from_subscriber_side=from_sub)
            self._carry_out(datapath, decision, frame, in_port, out_port)
            if decision.flow is not None:
                self._after_decision(datapath, decision)
            self._log_detections()

    def _carry_out(
        self, datapath: Any, d: Decision, frame: bytes, in_port: int, out_port: int
    ) -> None:
        if d.fate is Fate.FORWARD:
            self._packet_out(datapath, frame, in_port, out_port)
        elif d.fate is Fate.RESET:
            v = d.verdict
            if v.reset_mode == "rewrite":
                rst = craft.rst_replacing(frame)
                if rst is not None:
                    self._packet_out(datapath, rst, in_port, out_port)
                return
            # inject: the trigger is dropped; RSTs go to the side(s) the profile names
            from_client = d.flow is not None and d.flow.from_client
            to_client = v.reset_side in ("client", "both")
            to_server = v.reset_side in ("server", "both")
            for wanted, towards_sender in ((to_client, from_client), (to_server, not from_client)):
                if not wanted:
                    continue
                rst = craft.rst_to_sender(frame) if towards_sender else craft.rst_to_receiver(frame)
                if rst is not None:
                    self._packet_out(
                        datapath, rst, in_port, in_port if towards_sender else out_port
                    )

    def _packet_out(self, datapath: Any, data: bytes, in_port: int, out_port: int) -> None:
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        port = ofp.OFPP_IN_PORT if out_port == in_port else out_port
        datapath.send_msg(
            parser.OFPPacketOut(
                datapath=datapath,
                buffer_id=ofp.OFP_NO_BUFFER,
                in_port=in_port,
                actions=[parser.OFPActionOutput(port)],
                data=data,
            )
        )

    def _after_decision(self, datapath: Any, d: Decision) -> None:
        flow, verdict = d.flow, d.verdict
        assert flow is not None
        if verdict.final and flow.key not in self.logged:
            self.logged.add(flow.key)
            c = d.classification
            self.event_log.write(
                "verdict",
                flow=endpoints(flow).__dict__,
                inside=flow.initiated_inside,
                protocol=str(c.protocol) if c is not None else None,
                sni=c.sni if c is not None else None,
                verdict=verdict.to_json(),
                packet_ins=flow.packets,
            )
        if flow.key in self.installed or not switch_can_take_over(verdict, d.fate):
            return
        ep = endpoints(flow)
        ids = [next(self.meter_ids) for _ in range(2)]
        plan = plan_for(ep, verdict, d.fate, ids)
        for meter in plan.meters:
            datapath.send_msg(meter_mod(datapath, meter))
        for rule in plan.rules:
            datapath.send_msg(flow_mod(datapath, rule))
        if self.nft is not None:
            for loss in plan.losses:
                self.nft.add(loss)
        self.installed[flow.key] = (ep, plan)

    def _log_detections(self) -> None:
        assert self.engine is not None
        for event in self.engine.detections[self.detections_logged :]:
            self.event_log.write("detect", **event.__dict__)
        self.detections_logged = len(self.engine.detections)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        if not self._is_tspu(msg.datapath):
            return
        with self._lock:
            for key, (ep, plan) in list(self.installed.items()):
                if plan.rules and plan.rules[0].match_dict() == dict(msg.match.items()):
                    del self.installed[key]
                    self.logged.discard(key)
                    for meter in plan.meters:
                        msg.datapath.send_msg(meter_mod(msg.datapath, meter, "delete"))
                    if self.nft is not None and plan.losses:
                        self.nft.remove_flow(ep)
                    self.event_log.write("flow-expired", flow=ep.__dict__, reason=msg.reason)
                    break

    # --- run-time changes ---------------------------------------------------------------------

    def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        if command.get("cmd") == "stats":
            with self._lock:
                return {"ok": True, "packet_ins": self.packet_ins, "judged": len(self.installed)}
        if command.get("cmd") == "registry":
            return self._registry_update(Path(command["file"]))
        return {"ok": False, "error": f"unknown command {command.get('cmd')!r}"}

    def _registry_update(self, path: Path) -> dict[str, Any]:
        """Apply a new registry version as a diff: add the new prefixes' rules before deleting
        the old ones (no address is briefly unblocked); judged flows are left alone."""
        new = read_registry(path)
        started = time.monotonic()
        with self._lock:
            change = diff(self.registry, new)
            datapath = self.datapaths.get(self.config.tspu.dpid) if self.config.tspu else None
            if datapath is not None:
                for rule in registry_rules(change.add_prefixes):
                    datapath.send_msg(flow_mod(datapath, rule))
                for rule in registry_rules(change.remove_prefixes):
                    datapath.send_msg(flow_mod(datapath, rule, "delete"))
                datapath.send_msg(datapath.ofproto_parser.OFPBarrierRequest(datapath))
            self.registry = new
            if self.engine is not None:
                self.engine.set_registry(new)
        seconds = round(time.monotonic() - started, 4)
        self.event_log.write(
            "registry-update", file=str(path), added=len(change.add_prefixes),
            removed=len(change.remove_prefixes), seconds=seconds,
        )  # fmt: skip
        return {"ok": True, "added": len(change.add_prefixes),
                "removed": len(change.remove_prefixes), "seconds": seconds}  # fmt: skip

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[datapath.id] = datapath
            self.event_log.write("switch-up", dpid=datapath.id, tspu=self._is_tspu(datapath))
        elif ev.state == DEAD_DISPATCHER and datapath.id in self.datapaths:
            del self.datapaths[datapath.id]
            self.event_log.write("switch-down", dpid=datapath.id)
