"""A plain MAC-learning switch (Ryu's simple_switch_13, ported to os-ken).

It runs every switch except the TSPU, and the TSPU position too in baseline runs (no TSPU
configured), which is what benchmarks compare the TSPU against. Learned MACs become flow rules,
so after the first packets traffic runs at switch speed here as well.
"""

from __future__ import annotations

from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3

from tspulab.controllers.config import ControllerConfig
from tspulab.controllers.dispatch import SynchronousDispatch
from tspulab.controllers.events import EventLog, guarded

ETH_TYPE_LLDP = 0x88CC


class LearningSwitch(SynchronousDispatch, app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = ControllerConfig.from_env()
        self.event_log = EventLog(self.config.events_log)
        self.mac_to_port: dict[int, dict[str, int]] = {}
        self.packet_ins: dict[int, int] = {}

    def _mine(self, datapath: Any, dpid: int | None = None) -> bool:
        return not self.config.controls(datapath.id if dpid is None else dpid)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        # the message's dpid: os-ken sets datapath.id in the reader thread, possibly after this
        # app's thread took the event (see TspuApp.switch_features)
        if not self._mine(datapath, ev.msg.datapath_id):
            return
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self._add_flow(datapath, 0, parser.OFPMatch(), actions)

    def _add_flow(self, datapath: Any, priority: int, match: Any, actions: list[Any]) -> None:
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        datapath.send_msg(
            parser.OFPFlowMod(datapath=datapath, priority=priority, match=match, instructions=inst)
        )

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        datapath = msg.datapath
        if not self._mine(datapath):
            return
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocols(ethernet.ethernet)[0]
        if eth.ethertype == ETH_TYPE_LLDP:
            return
        self.packet_ins[datapath.id] = self.packet_ins.get(datapath.id, 0) + 1
        table = self.mac_to_port.setdefault(datapath.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_dst=eth.dst, eth_src=eth.src)
            self._add_flow(datapath, 1, match, actions)
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        datapath.send_msg(
            parser.OFPPacketOut(
                datapath=datapath,
                buffer_id=msg.buffer_id,
                in_port=in_port,
                actions=actions,
                data=data,
            )
        )
