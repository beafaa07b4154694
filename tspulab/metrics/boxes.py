"""Which box stopped which probe: the TSPU or the ISP's own older filter, and blocking and
collateral damage per box.

Two DPIs may act on one flow (tspu-behaviour.md §1); the report says which one a subscriber met.
Every failed direct probe is matched against what the controller logged:

- the ISP's old filter logs `old-filter-verdict` with the action, the flow and the name it
  matched (`host`, `sni`, `qname`): a probe is its when, within the probe's time, the filter of
  the probe's ISP acted on that subscriber's traffic for the probe's name (a DNS answer for the
  name counts for every probe kind: clients resolve first, and a tampered answer sends them
  elsewhere);
- the TSPU logs `verdict` with its action and flow: a probe is its when, within the probe's
  time, the TSPU of the probe's ISP acted (anything but allow/detect) on a flow from that
  subscriber to the address the probe reached, on the probe's port;
- an address in the TSPU's registry is dropped in the switch without a verdict event: a probe
  to one that no event explains is the TSPU's (`tspu (registry address)`).

A probe that no box explains stays `unexplained` (a server down, a timeout under load). When both
boxes acted, the one that acted first is said to have stopped it, and both are listed.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TSPU = "tspu"
OLD_FILTER = "old-filter"
UNEXPLAINED = "unexplained"
#: seconds after a probe's end within which an event still counts (the event log's timestamps
#: are the controller's, the probe's the runner's: same clock, a little later)
SLACK_S = 0.5
_KIND_PORT = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Stop:
    """Who stopped one probe."""

    isp: str
    service: str
    role: str
    kind: str
    subscriber: str
    outcome: str
    stopped_by: str
    boxes: tuple[str, ...]
    how: str

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "boxes": list(self.boxes)}


@dataclass
class BoxFigures:
    """One box of one ISP: the probes it stopped, and the services they were for."""

    probes: int = 0
    target_probes: int = 0
    innocent_probes: int = 0
    targets: set[str] = field(default_factory=set)
    innocents: set[str] = field(default_factory=set)
    kinds: dict[str, int] = field(default_factory=dict)


def _window(r: Mapping[str, Any]) -> tuple[float, float]:
    start = float(r.get("started") or 0.0)
    return start, start + float(r.get("time_total_s") or 0.0) + SLACK_S


def _domain(r: Mapping[str, Any]) -> str:
    target = str(r.get("target") or "")
    if "://" in target:
        target = target.split("://", 1)[1].split("/", 1)[0]
    return target.split(":")[0].lower()


def _filter_reason(e: Mapping[str, Any], domain: str, kind: str) -> str | None:
    action = str(e.get("action"))
    if action.startswith("dns-") and e.get("qname") == domain:
        return f"{action} ({e.get('answer')})"
    if kind == "http" and action.startswith("http-") and e.get("host") == domain:
        return action
    if kind == "https" and action == "tls-reset" and e.get("sni") == domain:
        return action
    return None


def attribute(
    results: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    address_of_host: Mapping[str, str],
    service_addresses: Mapping[str, str] | None = None,
    registry_addresses: Collection[str] = (),
) -> list[Stop]:
    """A `Stop` for every failed direct probe (https, http, dns) of `results`.

    `address_of_host`: subscriber host -> its address; `service_addresses`: service -> address;
    `registry_addresses`: the service addresses the TSPUs' registry lists."""
    service_addresses = service_addresses or {}
    filter_events: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    tspu_events: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for e in events:
        flow = e.get("flow") or {}
        if e.get("event") == "old-filter-verdict":
            filter_events[(str(e.get("isp")), str(flow.get("client")))].append(e)
        elif e.get("event") == "verdict":
            action = (e.get("verdict") or {}).get("action")
            if action not in ("allow", "detect", None):
                tspu_events[(str(e.get("tspu")), str(flow.get("client")))].append(e)
    stops = []
    for r in results:
        kind = str(r.get("kind"))
        if (
            kind not in ("https", "http", "dns")
            or r.get("ok")
            or r.get("method", "direct") != "direct"
        ):
            continue
        isp, sub = str(r.get("isp")), str(r.get("subscriber"))
        client = address_of_host.get(sub, "")
        lo, hi = _window(r)
        domain = _domain(r)
        acted: list[tuple[float, str, str]] = []
        for e in filter_events.get((isp, client), ()):
            reason = _filter_reason(e, domain, kind) if lo <= float(e["t"]) <= hi else None
            if reason is not None:
                acted.append((float(e["t"]), OLD_FILTER, reason))
        server = r.get("remote_ip")
        port = _KIND_PORT.get(kind)
        for e in tspu_events.get((isp, client), ()):
            flow = e.get("flow") or {}
            if not lo <= float(e["t"]) <= hi or port is None or flow.get("server_port") != port:
                continue
            if (server and server == flow.get("server")) or e.get("sni") == domain:
                acted.append((float(e["t"]), TSPU, str((e.get("verdict") or {}).get("action"))))
        acted.sort()
        if acted:
            boxes = tuple(dict.fromkeys(box for _, box, _ in acted))
            how = "; ".join(dict.fromkeys(f"{box}: {why}" for _, box, why in acted))
            by = acted[0][1]
        elif {server, service_addresses.get(str(r.get("service")))} & set(registry_addresses):
            boxes, how, by = (TSPU,), "tspu: registry address (dropped in the switch)", TSPU
        else:
            boxes, how, by = (), "", UNEXPLAINED
        stops.append(
            Stop(isp, str(r.get("service")), str(r.get("role")), kind, sub,
                 str(r.get("outcome")), by, boxes, how)
        )  # fmt: skip
    return stops


def per_box(stops: Iterable[Stop], services: Mapping[str, str]) -> dict[str, Any]:
    """Per ISP and box: probes stopped (of targets, of innocents) and the share of the
    scenario's target and innocent services (`services`: name -> role) it stopped at least
    once: its blocking and its collateral damage."""
    figures: dict[tuple[str, str], BoxFigures] = {}
    for s in stops:
        f = figures.setdefault((s.isp, s.stopped_by), BoxFigures())
        f.probes += 1
        f.kinds[s.kind] = f.kinds.get(s.kind, 0) + 1
        if s.role == "target":
            f.target_probes += 1
            f.targets.add(s.service)
        else:
            f.innocent_probes += 1
            f.innocents.add(s.service)
    n_targets = sum(1 for role in services.values() if role == "target")
    n_innocent = len(services) - n_targets
    out: dict[str, Any] = {}
    for (isp, box), f in sorted(figures.items()):
        out.setdefault(isp, {})[box] = {
            "probes_stopped": f.probes,
            "target_probes": f.target_probes,
            "innocent_probes": f.innocent_probes,
            "by_kind": dict(sorted(f.kinds.items())),
            "targets_blocked": sorted(f.targets),
            "innocents_blocked": sorted(f.innocents),
            "intended_blocking": len(f.targets) / n_targets if n_targets else None,
            "collateral_damage": len(f.innocents) / n_innocent if n_innocent else None,
        }
    return out


def by_box(
    results: list[dict[str, Any]],
    events: list[dict[str, Any]],
    address_of_host: Mapping[str, str],
    services: Mapping[str, tuple[str, str]],
    registry_addresses: Collection[str] = (),
) -> dict[str, Any]:
    """summary.json's `by_box`: every stopped probe and the figures per ISP and box.
    `services`: name -> (role, address)."""
    addresses = {name: address for name, (_, address) in services.items()}
    stops = attribute(results, events, address_of_host, addresses, registry_addresses)
    roles = {name: role for name, (role, _) in services.items()}
    return {"stops": [s.to_json() for s in stops], "per_isp": per_box(stops, roles)}


def boxes_html(summary: Mapping[str, Any]) -> str:
    """The report's section: figures per ISP and box, then who stopped each probe."""
    data = summary.get("by_box")
    if not isinstance(data, dict) or not data.get("stops"):
        return ""
    e = html.escape

    def pct(x: object) -> str:
        return f"{float(x) * 100:.1f} %" if isinstance(x, int | float) else "–"

    def named(services: list[str]) -> str:
        return f" ({e(', '.join(services))})" if services else ""

    rows = []
    for isp, boxes in data.get("per_isp", {}).items():
        for box, f in boxes.items():
            kinds = ", ".join(f"{k} {n}" for k, n in f["by_kind"].items())
            rows.append(
                f"<tr><td>{e(isp)}</td><td>{e(box)}</td><td>{f['target_probes']}</td>"
                f"<td>{f['innocent_probes']}</td><td>{e(kinds)}</td>"
                f"<td>{pct(f['intended_blocking'])}{named(f['targets_blocked'])}</td>"
                f"<td>{pct(f['collateral_damage'])}{named(f['innocents_blocked'])}</td></tr>"
            )  # fmt: skip
    stops = "".join(
        f"<tr><td>{e(s['isp'])}</td><td>{e(s['subscriber'])}</td><td>{e(s['service'])}</td>"
        f"<td>{e(s['role'])}</td><td>{e(s['kind'])}</td><td>{e(s['outcome'])}</td>"
        f"<td>{e(s['stopped_by'])}</td><td>{e(s['how'])}</td></tr>"
        for s in data["stops"]
    )  # fmt: skip
    return f"""<h2>Which box stopped which probe</h2>
<p class="note">Two DPIs may act on one flow: the TSPU and the ISP's own older filter
(tspu-behaviour.md §1, §4). Every failed direct probe (https, http, dns) is matched with the
verdicts each box logged for that subscriber and name or address while it ran; blocking and
collateral damage per box are the shares of the scenario's target and innocent services it
stopped at least once.</p>
<table class="num"><tr><th>ISP</th><th>box</th><th>target probes stopped</th>
<th>innocent probes stopped</th><th>by probe kind</th><th>intended blocking</th>
<th>collateral damage</th></tr>{"".join(rows)}</table>
<div class="scroll"><table><tr><th>ISP</th><th>subscriber</th><th>service</th><th>role</th>
<th>kind</th><th>outcome</th><th>stopped by</th><th>how</th></tr>{stops}</table></div>
"""


def box_lines(data: object) -> list[str]:
    """For the terminal summary, when an ISP's old filter stopped anything: per ISP, which box
    stopped how many probes of which services."""
    if not isinstance(data, dict) or not any(
        s.get("stopped_by") == OLD_FILTER for s in data.get("stops", [])
    ):
        return []
    lines = []
    for isp, boxes in data.get("per_isp", {}).items():
        parts = []
        for box, f in boxes.items():
            named = f["targets_blocked"] + [f"{n} (innocent)" for n in f["innocents_blocked"]]
            parts.append(f"{box} {f['probes_stopped']} ({', '.join(named)})")
        lines.append(f"stopped by box, {isp}: " + "; ".join(parts))
    return lines
