"""The TSPU middlebox as an os-ken (Ryu API) app: one pure `TspuBox` per TSPU switch (one per ISP).

Each handler turns an OpenFlow event into a `switch_events` value, hands it to the switch's box
and sends what the box returns from one place (`_send`): OpenFlow messages to the datapath, loss
rules to the nftables worker. Decisions, rules, packet-outs and RSTs all come from the box
(`tspu_box.py`, unit-tested against a flow table model without a switch); this file only moves
messages, as FAUCET's faucet.py does for its valves.

A switch the app does not know, a packet-in it cannot judge, an error the switch reports: each
is logged and counted, and the app goes on serving the other switches.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3
from os_ken.ofproto.ofproto_parser import MsgBase

from tspulab.controllers.config import ControllerConfig, read_registry
from tspulab.controllers.control import ControlServer
from tspulab.controllers.dispatch import SynchronousDispatch, send_now, write_directly
from tspulab.controllers.enforcement import LossAdd, LossRemove
from tspulab.controllers.events import EventLog, guarded
from tspulab.controllers.nftloss import NftLoss
from tspulab.controllers.oldfilter_box import OldFilterBox
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
from tspulab.controllers.tspu_box import TspuBox, endpoints, profile_inspects

__all__ = ["TspuApp", "endpoints", "profile_inspects"]


class TspuApp(SynchronousDispatch, app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = ControllerConfig.from_env()
        self.event_log = EventLog(self.config.events_log)
        self.datapaths: dict[int, Any] = {}
        self.boxes: dict[int, TspuBox | OldFilterBox] = {
            t.dpid: TspuBox(t, self.event_log.write) for t in self.config.tspus
        }
        # Each ISP's own older filter is a box of its own on its own switch (oldfilter_box.py).
        self.boxes.update(
            (f.dpid, OldFilterBox(f, self.event_log.write)) for f in self.config.old_filters
        )
        self.nft = {
            t.dpid: NftLoss(t.nft_table, t.subscriber_if, t.upstream_if, log=self.event_log.write)
            for t in self.config.tspus
            if t.nft_table
        }
        #: events for switches that are not TSPUs of this run (the learning switch's)
        self.ignored: Counter[str] = Counter()
        sockets = {t.control_socket for t in self.config.tspus if t.control_socket}
        self.controls = [ControlServer(path, self._command) for path in sockets]

    # --- the one place that sends -------------------------------------------------------------

    def _handle(self, dpid: int, event: Event, datapath: Any = None) -> list[Any]:
        box = self.boxes.get(dpid)
        if box is None:
            self.ignored[type(event).__name__] += 1
            return []
        with box.lock:
            out: list[Any] = box.handle(time.time(), event)
        self._send(datapath or self.datapaths.get(dpid), dpid, out)
        return out

    def _send(self, datapath: Any, dpid: int, out: list[Any]) -> None:
        """Messages go out in order as one write (one queue hand-off, one send call, instead of
        one per message); loss work goes to the nftables worker."""
        wire = []
        for item in out:
            if isinstance(item, MsgBase):
                if datapath is None:
                    continue  # not connected: the next SwitchUp rebuilds the switch whole
                item.datapath = datapath
                datapath.set_xid(item)
                item.serialize()
                wire.append(bytes(item.buf))
            elif isinstance(item, (LossAdd, LossRemove)):
                worker = self.nft.get(dpid)
                if worker is not None:
                    worker.submit(item)
        if wire:
            send_now(datapath, b"".join(wire))
        self.event_log.flush_soon()

    # --- OpenFlow events -----------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        # The dpid from the message, not datapath.id: os-ken's own features handler sets that in
        # the reader thread after handing this app the event, so this thread could read None and
        # ignore a TSPU switch (seen in the VM guest: no rules sent, the bring-up waited 600 s).
        dpid = ev.msg.datapath_id
        self.datapaths[dpid] = datapath
        if dpid in self.boxes:
            write_directly(datapath)
        if dpid in self.nft:  # its ports exist now: the loss chains can hook them
            self.nft[dpid].prepare()
        self._handle(dpid, SwitchUp(), datapath)

    # Both states: the app answers the switch's features (through os-ken's queue) in its own
    # thread, possibly before os-ken's handler moves the datapath to MAIN; the reply to the
    # barrier sent then is dispatched at once in the reader thread (dispatch.py), and filtered
    # by MAIN alone it was lost on a loaded machine (no tspu-rules-installed: bring-up hung).
    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def barrier_reply(self, ev: Any) -> None:
        self._handle(ev.msg.datapath.id, BarrierReply())

    # CONFIG too: the switch holds the TSPU's rules from the features answer on, and its first
    # packet-ins may come while os-ken still waits for the port description (a loaded machine)
    @set_ev_cls(ofp_event.EventOFPPacketIn, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        data = bytes(msg.data or b"")
        self._handle(
            msg.datapath.id,
            PacketIn(
                data=data,
                in_port=msg.match.get("in_port"),
                total_len=msg.total_len if msg.total_len is not None else len(data),
                cookie=msg.cookie or 0,
                reason=msg.reason or 0,
                table_id=msg.table_id or 0,
            ),
            msg.datapath,
        )

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        event = FlowRemoved(dict(msg.match.items()), msg.reason, msg.cookie)
        self._handle(msg.datapath.id, event, msg.datapath)

    @set_ev_cls(
        ofp_event.EventOFPErrorMsg, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER]
    )
    @guarded
    def error_msg(self, ev: Any) -> None:
        msg = ev.msg
        dpid = msg.datapath.id
        if dpid not in self.boxes:
            self.event_log.write("switch-error", dpid=dpid, type=msg.type, code=msg.code)
            self.ignored["SwitchError"] += 1
            return
        self._handle(dpid, SwitchError(msg.type, msg.code, bytes(msg.data or b"")))

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        datapath = ev.datapath
        if datapath.id is None:
            return  # the connection died before the switch said who it is
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[datapath.id] = datapath
            self.event_log.write("switch-up", dpid=datapath.id, tspu=datapath.id in self.boxes)
        elif ev.state == DEAD_DISPATCHER:
            self.event_log.write("switch-down", dpid=datapath.id)
            # a reconnect may already have registered the new connection: only this one goes
            dpid = datapath.id
            if self.datapaths.get(dpid) is datapath:
                del self.datapaths[dpid]
                self._handle(dpid, SwitchDown())

    # --- run-time changes (the control thread) ------------------------------------------------

    def _targets(self, command: dict[str, Any]) -> list[int]:
        """The named box, or every TSPU (an old filter is only changed by name: its list is
        its own)."""
        dpid = command.get("dpid")
        if dpid is None:
            return [d for d, box in self.boxes.items() if isinstance(box, TspuBox)]
        return [d for d in self.boxes if d == dpid]

    def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command.get("cmd")
        if cmd == "stats":
            stats = Counter[str]()
            for dpid in self._targets(command) if "dpid" in command else self.boxes:
                box = self.boxes[dpid]
                with box.lock:
                    stats.update(box.stats())
            # A reader of the event log syncs with it through this command: everything decided
            # so far is in the file when the reply comes, unless a full disk holds some back
            # (`events_held`, written once there is room).
            self.event_log.flush()
            held = self.event_log.held
            return {"ok": True, **stats, **({"events_held": held} if held else {})}
        if cmd == "registry":
            path = Path(command["file"])
            registry = read_registry(path)
            results = []
            for dpid in self._targets(command):
                started = time.monotonic()
                self._handle(dpid, RegistryChange(registry, path))
                added, removed = self.boxes[dpid].last_registry_change
                result = {
                    "tspu": self.boxes[dpid].config.name,
                    "added": added,
                    "removed": removed,
                    "seconds": round(time.monotonic() - started, 4),
                }
                self.event_log.write("registry-update", file=str(path), **result)
                results.append(result)
            self.event_log.flush()
            if len(results) == 1:
                return {"ok": True, **results[0]}
            return {"ok": True, "tspus": results}
        if cmd == "profile":
            for dpid in self._targets(command):
                self._handle(dpid, ProfileChange(command["name"]))
            self.event_log.flush()
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}
