"""Text views of a running lab's state: the controller's verdicts and a TSPU switch's rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tspulab.contracts import EventKind
from tspulab.controllers.pipeline import (
    COOKIE_BYPASS,
    COOKIE_FORWARD,
    COOKIE_INSPECT,
    COOKIE_JUDGED,
    COOKIE_MIRROR,
    COOKIE_MISS,
    COOKIE_REGISTRY,
)
from tspulab.lab.ofctl import FlowStat

#: What each of the TSPU pipeline's cookies marks (controllers/pipeline.py).
RULE_KINDS = {
    COOKIE_REGISTRY: "registry",
    COOKIE_FORWARD: "forward",
    COOKIE_INSPECT: "inspect",
    COOKIE_JUDGED: "judged",
    COOKIE_BYPASS: "bypass",
    COOKIE_MIRROR: "mirror",
    COOKIE_MISS: "miss",
}


def read_events(path: Path) -> list[dict[str, Any]]:
    """The controller's event lines (a line being written when we read is skipped)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def verdict_lines(events: list[dict[str, Any]], started: float, limit: int | None) -> list[str]:
    """One line per final verdict and per detection, newest last: when (seconds since the lab
    started), which TSPU, the flow, what was recognised, the action and the rule that fired."""
    kinds = (EventKind.VERDICT, EventKind.DETECT, EventKind.OLD_FILTER_VERDICT)
    wanted = [e for e in events if e.get("event") in kinds]
    if limit is not None:
        wanted = wanted[-limit:] if limit > 0 else []
    lines = []
    for e in wanted:
        t = float(e.get("t", started)) - started
        if e["event"] == EventKind.DETECT:
            fields = {k: v for k, v in e.items() if k not in ("t", "event", "tspu")}
            lines.append(f"{t:8.2f}s {e.get('tspu', '?'):<10} detect  {_compact(fields)}")
            continue
        if e["event"] == EventKind.OLD_FILTER_VERDICT:  # the ISP's own older filter acted
            flow = e.get("flow") or {}
            name = e.get("host") or e.get("sni") or e.get("qname") or "?"
            answer = f" ({e['answer']})" if e.get("answer") else ""
            lines.append(
                f"{t:8.2f}s {e.get('isp', '?'):<10} old filter: {flow.get('client')} → "
                f"{flow.get('server')}:{flow.get('server_port')}  {name}  ⇒ {e.get('action')}"
                f"{answer}, {e.get('mode')}"
            )
            continue
        flow = e.get("flow") or {}
        verdict = e.get("verdict") or {}
        proto = {6: "tcp", 17: "udp"}.get(int(flow.get("proto") or 0), str(flow.get("proto")))
        what = e.get("protocol") or "?"
        if e.get("sni"):
            what += f" sni={e['sni']}"
        lines.append(
            f"{t:8.2f}s {e.get('tspu', '?'):<10} {proto} {flow.get('client')}:"
            f"{flow.get('client_port')} → {flow.get('server')}:{flow.get('server_port')}  {what}"
            f"  ⇒ {verdict.get('action', '?')} (rule {verdict.get('rule') or '-'};"
            f" after {e.get('packet_ins', '?')} packet-ins)"
        )
        if verdict.get("reason"):
            lines.append(f"{'':20}{verdict['reason']}")
    return lines


def _compact(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, "", [], {}))


def flow_lines(flows: list[FlowStat], *, show_all: bool = False) -> list[str]:
    """A switch's rules by kind with their counters: every judged rule (one per judged flow and
    direction), and per other kind either every rule (`show_all`) or a count with its totals."""
    lines = []
    by_kind: dict[str, list[FlowStat]] = {}
    for f in flows:
        by_kind.setdefault(RULE_KINDS.get(f.cookie, f"cookie {f.cookie:#x}"), []).append(f)
    for kind in sorted(by_kind, key=lambda k: (k != "judged", k)):
        rules = by_kind[kind]
        packets, nbytes = sum(f.n_packets for f in rules), sum(f.n_bytes for f in rules)
        lines.append(f"{kind}: {len(rules)} rule(s), {packets} packets, {nbytes} bytes")
        if kind == "judged" or show_all or len(rules) <= 3:
            for f in sorted(rules, key=lambda f: (f.table, -f.priority, f.match)):
                lines.append(
                    f"  table={f.table} prio={f.priority} packets={f.n_packets} "
                    f"bytes={f.n_bytes}  {f.match}  → {f.actions}"
                )
    return lines or ["(no rules)"]


_METER = re.compile(r"^meter[=:](\d+)\b", re.M)


def _meter_entries(text: str) -> dict[int, str]:
    """`ovs-ofctl dump-meters` or `meter-stats` text: meter id -> its lines joined (an entry is
    a `meter=N` / `meter:N` line and the band lines under it)."""
    marks = list(_METER.finditer(text))
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out[int(m.group(1))] = " ".join(text[m.start() : end].split())
    return out


def meter_lines(configs: str, stats: str) -> list[str]:
    """Each meter's bands (rate, burst) and counters (what entered it, what its bands dropped)."""
    config, counters = _meter_entries(configs), _meter_entries(stats)
    lines = [f"meters: {len(config)}"] if config else ["meters: none"]
    for meter in sorted(config):
        lines.append(f"  {config[meter]}")
        if meter in counters:
            lines.append(f"    {counters[meter]}")
    return lines
