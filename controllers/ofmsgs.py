"""Turn pure `FlowRule` / `MeterSpec` descriptions into OpenFlow 1.3 messages for one datapath."""

from __future__ import annotations

from typing import Any

from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    FlowRule,
    GotoTable,
    Meter,
    MeterSpec,
    Output,
    table,
)


def flow_mod(datapath: Any, rule: FlowRule, command: str = "add") -> Any:
    """An OFPFlowMod for `rule`; no output or goto means drop."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    inst = []
    for a in rule.actions:
        if isinstance(a, Meter):
            inst.append(parser.OFPInstructionMeter(a.meter_id, ofp.OFPIT_METER))
    actions = [
        parser.OFPActionOutput(a.port, ofp.OFPCML_NO_BUFFER if a.port == CONTROLLER_PORT else 0)
        for a in rule.actions
        if isinstance(a, Output)
    ]
    if actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    for a in rule.actions:
        if isinstance(a, GotoTable):
            inst.append(parser.OFPInstructionGotoTable(table(a.table).table_id))
    commands = {"add": ofp.OFPFC_ADD, "delete": ofp.OFPFC_DELETE_STRICT}
    return parser.OFPFlowMod(
        datapath=datapath,
        cookie=rule.cookie,
        table_id=table(rule.table).table_id,
        command=commands[command],
        idle_timeout=rule.idle_timeout,
        hard_timeout=rule.hard_timeout,
        priority=rule.priority,
        flags=ofp.OFPFF_SEND_FLOW_REM if rule.notify_removed else 0,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**rule.match_dict()),
        instructions=inst,
    )


def meter_mod(datapath: Any, meter: MeterSpec, command: str = "add") -> Any:
    """A meter with a single drop band: a policer, as the 2021 Twitter throttler was."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    commands = {"add": ofp.OFPMC_ADD, "delete": ofp.OFPMC_DELETE}
    bands = [parser.OFPMeterBandDrop(rate=meter.rate_kbps, burst_size=meter.burst_kbits)]
    return parser.OFPMeterMod(
        datapath=datapath,
        command=commands[command],
        flags=ofp.OFPMF_KBPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
        meter_id=meter.meter_id,
        bands=bands if command == "add" else [],
    )


def delete_all_flows(datapath: Any) -> Any:
    """Remove every flow in every table (a fresh start when a switch connects)."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    return parser.OFPFlowMod(
        datapath=datapath,
        table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


def delete_all_meters(datapath: Any) -> Any:
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    return parser.OFPMeterMod(
        datapath=datapath, command=ofp.OFPMC_DELETE, flags=0, meter_id=ofp.OFPM_ALL, bands=[]
    )
