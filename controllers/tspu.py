"""The TSPU middlebox as an os-ken (Ryu API) app.

On connection of the TSPU switch it installs the pipeline of `pipeline.py`: the registry's
aggregated prefixes as drop rules in both directions, and bump-in-the-wire forwarding between the
subscriber-side and upstream ports. Nothing of an allowed flow ever reaches the controller; the
flow and port counters of the switch show it.

The app stays thin (STYLE.md): rule descriptions come from the pure `pipeline` module, this file
only sends them and keeps the datapath registry.
"""

from __future__ import annotations

import time
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
from tspulab.controllers.config import ControllerConfig
from tspulab.controllers.events import EventLog, guarded
from tspulab.controllers.ofmsgs import delete_all_flows, flow_mod
from tspulab.controllers.pipeline import tspu_rules


class TspuApp(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = ControllerConfig.from_env()
        self.event_log = EventLog(self.config.events_log)
        self.datapaths: dict[int, Any] = {}
        self._install_started: dict[int, float] = {}

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
        rules = tspu_rules(tspu.registry_prefixes, tspu.ports, inspect=False)
        datapath.send_msg(delete_all_flows(datapath))
        for rule in rules:
            datapath.send_msg(flow_mod(datapath, rule))
        self._install_started[datapath.id] = started
        datapath.send_msg(datapath.ofproto_parser.OFPBarrierRequest(datapath))
        self.event_log.write(
            "tspu-rules-sent",
            dpid=datapath.id,
            rules=len(rules),
            registry_prefixes=len(tspu.registry_prefixes),
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

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def packet_in(self, ev: Any) -> None:
        # The pipeline sends nothing to the controller; if something arrives, it is a bug worth
        # seeing in the event log rather than silently forwarding.
        if self._is_tspu(ev.msg.datapath):
            self.event_log.write("tspu-unexpected-packet-in", dpid=ev.msg.datapath.id)

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
