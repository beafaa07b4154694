"""Turn pure `FlowRule` descriptions into OpenFlow 1.3 messages for one datapath."""

from __future__ import annotations

from typing import Any

from tspulab.controllers.pipeline import FlowRule, GotoTable, Output, table


def flow_mod(datapath: Any, rule: FlowRule) -> Any:
    """An OFPFlowMod(ADD) for `rule`; an empty instruction list means drop."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    actions = [parser.OFPActionOutput(a.port) for a in rule.actions if isinstance(a, Output)]
    inst = []
    if actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    for a in rule.actions:
        if isinstance(a, GotoTable):
            inst.append(parser.OFPInstructionGotoTable(table(a.table).table_id))
    return parser.OFPFlowMod(
        datapath=datapath,
        cookie=rule.cookie,
        table_id=table(rule.table).table_id,
        command=ofp.OFPFC_ADD,
        idle_timeout=rule.idle_timeout,
        hard_timeout=rule.hard_timeout,
        priority=rule.priority,
        match=parser.OFPMatch(**rule.match_dict()),
        instructions=inst,
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
