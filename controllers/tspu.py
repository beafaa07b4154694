"""The TSPU middlebox as an os-ken (Ryu API) app: one `TspuBox` per TSPU switch (one per ISP).

When a TSPU switch connects, the app installs the pipeline of `pipeline.py`: the registry's
aggregated prefixes as drop rules, and, when the box's behaviour profile inspects bytes, a rule
sending TCP/UDP packets of flows not yet judged to the controller. Each such packet goes through
the pure engine (`tspulab.dpi.engine.TspuEngine`, the same object `tspulab replay --profile`
uses); the packet's fate (forward, drop, a crafted RST) is carried out with a packet-out, and
once the verdict is final the flow is pushed into the switch (`enforcement.plan_for`): judged
rules, meters, loss rules. From then on none of the flow's packets reach the controller.

The app stays thin (STYLE.md): decisions come from the engine, rule descriptions from pure
modules, per-switch state from `tspu_box.TspuBox`; this file only moves messages.
"""

from __future__ import annotations

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
from tspulab.controllers.events import EventLog, guarded
from tspulab.controllers.ofmsgs import delete_all_flows, delete_all_meters, flow_mod, meter_mod
from tspulab.controllers.pipeline import registry_rules
from tspulab.controllers.tspu_box import TspuBox, endpoints, profile_inspects
from tspulab.dpi.engine import Decision
from tspulab.dpi.registry import diff
from tspulab.dpi.verdict import Fate

__all__ = ["TspuApp", "endpoints", "profile_inspects"]


class TspuApp(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = ControllerConfig.from_env()
        self.event_log = EventLog(self.config.events_log)
        self.datapaths: dict[int, Any] = {}
        self._install_started: dict[int, float] = {}
        self.boxes = {t.dpid: TspuBox(t) for t in self.config.tspus}
        sockets = {t.control_socket for t in self.config.tspus if t.control_socket}
        self.controls = [ControlServer(path, self._command) for path in sockets]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        box = self.boxes.get(datapath.id)
        if box is None:
            return
        started = time.monotonic()
        rules = box.initial_rules()
        datapath.send_msg(delete_all_flows(datapath))
        datapath.send_msg(delete_all_meters(datapath))
        for rule in rules:
            datapath.send_msg(flow_mod(datapath, rule))
        self._install_started[datapath.id] = started
        datapath.send_msg(datapath.ofproto_parser.OFPBarrierRequest(datapath))
        self.event_log.write(
            "tspu-rules-sent", dpid=datapath.id, tspu=box.config.name, rules=len(rules),
            registry_prefixes=len(box.registry.aggregated_prefixes()), inspects=box.inspects,
            profile=box.profile_name,
        )  # fmt: skip

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
        box = self.boxes.get(datapath.id)
        if box is None:
            return
        if box.engine is None:
            self.event_log.write("tspu-unexpected-packet-in", dpid=datapath.id)
            return
        ports = box.config.ports
        in_port = msg.match["in_port"]
        from_sub = in_port == ports.subscriber
        out_port = ports.upstream if from_sub else ports.subscriber
        frame = bytes(msg.data)
        with box.lock:
            decision = box.judge(frame, time.time(), from_sub)
            # Rules first: the switch handles messages in order, so the reply to the packet sent
            # on below already meets the flow's rule instead of climbing to the controller.
            plan = box.take_over(decision)
            if plan is not None:
                for meter in plan.meters:
                    datapath.send_msg(meter_mod(datapath, meter))
                for rule in plan.rules:
                    datapath.send_msg(flow_mod(datapath, rule))
            self._carry_out(datapath, decision, frame, in_port, out_port)
            event = box.verdict_event(decision)
            if event is not None:
                self.event_log.write("verdict", **event)
            for detection in box.new_detections():
                self.event_log.write("detect", **detection)

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

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        box = self.boxes.get(msg.datapath.id)
        if box is None:
            return
        with box.lock:
            gone = box.forget(dict(msg.match.items()))
        if gone is not None:
            ep, plan = gone
            for meter in plan.meters:
                msg.datapath.send_msg(meter_mod(msg.datapath, meter, "delete"))
            self.event_log.write(
                "flow-expired", tspu=box.config.name, flow=ep.__dict__, reason=msg.reason
            )

    # --- run-time changes ---------------------------------------------------------------------

    def _targets(self, command: dict[str, Any]) -> list[TspuBox]:
        dpid = command.get("dpid")
        return [b for d, b in self.boxes.items() if dpid is None or d == dpid]

    def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command.get("cmd")
        if cmd == "stats":
            boxes = self._targets(command)
            return {
                "ok": True,
                "packet_ins": sum(b.packet_ins for b in boxes),
                "judged": sum(len(b.installed) for b in boxes),
            }
        if cmd == "registry":
            results = [
                self._registry_update(b, Path(command["file"])) for b in self._targets(command)
            ]
            return (
                {"ok": True, **results[0]} if len(results) == 1 else {"ok": True, "tspus": results}
            )
        if cmd == "profile":
            for box in self._targets(command):
                with box.lock:
                    box.set_profile(command["name"])
                self.event_log.write(
                    "profile-change", tspu=box.config.name, profile=command["name"]
                )
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def _registry_update(self, box: TspuBox, path: Path) -> dict[str, Any]:
        """Apply a new registry version as a diff: add the new prefixes' rules before deleting
        the old ones (no address is briefly unblocked); judged flows are left alone."""
        new = read_registry(path)
        started = time.monotonic()
        with box.lock:
            change = diff(box.registry, new)
            datapath = self.datapaths.get(box.config.dpid)
            if datapath is not None:
                for rule in registry_rules(change.add_prefixes):
                    datapath.send_msg(flow_mod(datapath, rule))
                for rule in registry_rules(change.remove_prefixes):
                    datapath.send_msg(flow_mod(datapath, rule, "delete"))
                datapath.send_msg(datapath.ofproto_parser.OFPBarrierRequest(datapath))
            box.set_registry(new)
        result = {
            "tspu": box.config.name,
            "added": len(change.add_prefixes),
            "removed": len(change.remove_prefixes),
            "seconds": round(time.monotonic() - started, 4),
        }
        self.event_log.write("registry-update", file=str(path), **result)
        return result

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[datapath.id] = datapath
            self.event_log.write("switch-up", dpid=datapath.id, tspu=datapath.id in self.boxes)
        elif ev.state == DEAD_DISPATCHER and datapath.id in self.datapaths:
            del self.datapaths[datapath.id]
            self.event_log.write("switch-down", dpid=datapath.id)
