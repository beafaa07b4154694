"""The campaign report's HTML: tables and embedded figures from a Timeline (no file access)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from tspulab.metrics.boxes import boxes_html
from tspulab.metrics.expect import ExpectationResult
from tspulab.metrics.html_parts import both, num, pct, row, shade, table
from tspulab.metrics.plots import (
    blocked_addresses_png,
    damage_png,
    heatmap_png,
    performance_data,
    performance_png,
    rate,
)
from tspulab.metrics.population_page import (
    fold_members,
    population_cell,
    population_text,
    populations_section,
)
from tspulab.metrics.summary import kinds_text
from tspulab.metrics.timeline import Timeline


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">{html.escape(alt)}: not measured in this run.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="fig" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _step_table(tl: Timeline, isp: str) -> str:
    methods = tl.methods
    populations = tl.populations()
    head = [
        "step",
        "blocked addresses<br>(prefixes)",
        "over-<br>blocking",
        'targets blocked per subscriber <span class="note">(binary)</span>',
        'collateral per subscriber <span class="note">(binary; by users)</span>',
        "subscribers hit",
        'broken or degraded <span class="note">(binary)</span>',
        *[f"{html.escape(n)}<br>broken" for n in populations],
        *[f"via<br>{html.escape(m)}" for m in methods],
        "goodput<br>median",
        "TTFB<br>median",
        "named innocent services broken; degraded",
    ]
    rows = []
    for b in tl.steps:
        p = tl.point(b, isp)
        if p is None:
            continue
        s = p.summary
        broken = [x.name for x in s.named("innocent") if x.broken]
        degraded = [f"{x.name} ({rate(x.goodput_kbps or 0)})" for x in s.services if x.degraded]
        hurt = html.escape(", ".join(broken)) + (
            f'; <span class="warn">{html.escape(", ".join(degraded))}</span>' if degraded else ""
        )
        prefixes = f" ({p.registry.prefixes:,})" if p.registry else ""
        sub = p.subscribers
        rows.append(
            [
                f'<b>{html.escape(b.key)}</b><br><span class="note">{html.escape(tl.scenario_time(b.start_s))}</span>',
                num(p.blocked_addresses) + prefixes,
                num(s.overblocking_ratio, "{:,.0f}×") if p.blocked_addresses else "–",
                both(pct(sub.intended_blocking), pct(s.intended_blocking))
                if sub.intended_blocking is not None
                else "–",
                both(
                    shade(sub.collateral_damage),
                    f"{pct(s.collateral_damage)}; {pct(s.collateral_damage_weighted)}",
                )
                if sub.collateral_damage is not None
                else "–",
                shade(sub.subscribers_hit),
                shade(s.collateral_degraded),
                *[population_cell(sub.population(n)) for n in populations],
                *[shade(p.circumvention_success(m), good_high=True) for m in methods],
                "–" if p.throughput_kbps is None else rate(p.throughput_kbps),
                num(p.ttfb_s and 1000 * p.ttfb_s, "{:.0f} ms"),
                f'<span class="wrap">{hurt}</span>' if hurt else "",
            ]
        )
    return table(head, rows)


def _circumvention_table(tl: Timeline) -> str:
    if not tl.methods:
        return '<p class="note">No circumvention methods were used in this run.</p>'
    rows = [row(["method", "target", "all ISPs", *[html.escape(i) for i in tl.isps]], "th")]
    for (method, service), (ok, tries) in sorted(tl.circumvention_table.items()):
        per_isp = []
        for isp in tl.isps:
            pairs = [
                p.circumvention_tries(method, service)
                for (kind, _, i), p in tl.points.items()
                if kind == "step" and i == isp
            ]
            i_ok, i_tries = sum(a for a, _ in pairs), sum(n for _, n in pairs)
            per_isp.append(f"{shade(i_ok / i_tries, True)} ({i_ok}/{i_tries})" if i_tries else "–")
        rows.append(
            row(
                [
                    html.escape(method),
                    html.escape(service),
                    f"{shade(ok / tries, True)} ({ok}/{tries})",
                    *per_isp,
                ]
            )
        )
    return f'<div class="scroll"><table class="num">{"".join(rows)}</table></div>'


def _expect_table(results: list[ExpectationResult]) -> str:
    if not results:
        return '<p class="note">The scenario states no expectations.</p>'
    passed = sum(r.passed for r in results)
    rows = [row(["", "expectation", "observed"], "th")]
    for r in results:
        mark = '<b class="good">pass</b>' if r.passed else '<b class="bad">FAIL</b>'
        rows.append(row([mark, html.escape(r.name), html.escape(r.message)]))
    return (
        f"<p><b>{passed} of {len(results)}</b> expectations passed.</p>"
        f'<table class="expect">{"".join(rows)}</table>'
    )


def _performance(tl: Timeline) -> str:
    """The goodput and TTFB figure, or in words why there is none (never an empty chart)."""
    goodput, ttfb = performance_data(tl)
    if not goodput and not ttfb:
        return (
            '<p class="note">No chart: no transfer probe ran (the scenario\'s '
            "<code>probes.transfer_bytes</code> is 0) and no probe reached a service to time "
            "its first byte.</p>"
        )
    why = (
        ""
        if goodput
        else '<p class="note">Time to first byte only: no transfer probe ran (the scenario\'s '
        "<code>probes.transfer_bytes</code> is 0), so there is no goodput to draw.</p>"
    )
    return why + _img(performance_png(tl), "goodput and time to first byte")


def _events_table(tl: Timeline) -> str:
    rows = [row(["scenario time", "entry", "what happened"], "th")]
    for ev in tl.events:
        rows.append(
            row(
                [
                    html.escape(tl.scenario_time(ev.t_s)),
                    f"<b>{html.escape(ev.label)}</b>",
                    html.escape("; ".join(ev.what)),
                ]
            )
        )
    return (
        f"<table>{''.join(rows)}</table>"
        if tl.events
        else '<p class="note">No timeline entries.</p>'
    )


def _headline(tl: Timeline) -> str:
    """Where the campaign ended, per ISP (the last step that measured anything): the figures per
    subscriber first, the binary view (probes pooled, broken below one half) after them."""
    items = []
    populations = tl.populations()
    for isp in tl.isps:
        last = next(
            (p for b in reversed(tl.steps) if (p := tl.point(b, isp)) and p.summary.services), None
        )
        if last is None:
            continue
        s, sub = last.summary, last.subscribers
        via = ", ".join(
            f"via {html.escape(m)} {pct(last.circumvention_success(m))}"
            for m in tl.methods
            if last.circumvention_success(m) is not None
        )
        pop = population_text(sub, populations)
        items.append(
            f"<li><b>{html.escape(isp)}</b> at step <i>{html.escape(last.bucket.key)}</i>: "
            f"targets blocked for <b>{pct(sub.intended_blocking)}</b> of subscribers, "
            f"collateral damage <b>{shade(sub.collateral_damage)}</b> of named innocent "
            f"services per subscriber, {shade(sub.subscribers_hit)} of subscribers lose at "
            f"least one innocent service"
            + (f"; {pop}" if pop else "")
            + f' <span class="note">(binary view: targets blocked {pct(s.intended_blocking)}, '
            f"collateral damage {pct(s.collateral_damage)}, "
            f"{pct(s.collateral_damage_weighted)} weighted by users)</span>; "
            f"{num(last.blocked_addresses)} addresses blocked"
            + (f"; targets reached {via}" if via else "")
            + "</li>"
        )
    if len(items) > 1 and tl.steps:
        every = tl.overall(tl.steps[-1])
        pop = population_text(every, populations)
        items.append(
            f"<li><b>all subscribers</b> at step <i>{html.escape(tl.steps[-1].key)}</i>: targets "
            f"blocked for {pct(every.intended_blocking)}, collateral damage "
            f"{shade(every.collateral_damage)} per subscriber, "
            f"{shade(every.subscribers_hit)} hit" + (f"; {pop}" if pop else "") + "</li>"
        )
    return f"<ul>{''.join(items)}</ul>" if items else '<p class="note">No probe results yet.</p>'


def _isp_list(meta: dict[str, Any], tl: Timeline) -> str:
    isps = {i.get("name"): i for i in meta.get("isps") or [] if isinstance(i, dict)}
    rows = [row(["ISP", "profile", "subscriber hosts (weight)", "TSPU coverage"], "th")]
    for name in tl.isps:
        i = isps.get(name, {})
        cov = i.get("coverage")
        weights = i.get("weights") or {}
        hosts = [
            f"{h} ({float(weights[h]):,.0f})" if h in weights else h
            for h in i.get("subscribers") or []
        ]
        rows.append(
            row(
                [
                    f"<b>{html.escape(name)}</b>",
                    html.escape(str(i.get("profile", "?"))),
                    html.escape(", ".join(hosts)),
                    "?" if cov is None else pct(float(cov)),
                ]
            )
        )
    return f"<table>{''.join(rows)}</table>"


def _contract_note(summary: dict[str, Any]) -> str:
    problem = summary.get("contract_problem")
    if not problem:
        return ""
    return f'<p class="bad">run.json did not match its contract: {html.escape(str(problem))}</p>'


def _services_table(summary: dict[str, Any], tl: Timeline) -> str:
    services = summary.get("services")
    if not isinstance(services, list) or not services:
        return '<p class="note">No summary of this run (summary.json missing).</p>'
    e = html.escape
    rows = [row(["service", "role", "cloud", "address", "in registry", "probes ok", "verdict",
                  "goodput", "outcomes"], "th")]  # fmt: skip
    for s in fold_members(services, {x.name: x.population for x in tl.services}):
        verdict = (
            e(str(s["verdict"])) if s.get("verdict")
            else '<b class="bad">broken</b>' if s.get("broken")
            else '<b class="warn">degraded</b>' if s.get("degraded")
            else '<b class="good">reachable</b>'
        )  # fmt: skip
        listed = s.get("address_in_registry")
        goodput = s.get("goodput_kbps")
        outcomes = s.get("outcomes") or {}
        rows.append(row([
            e(str(s.get("name"))), e(str(s.get("role"))), e(str(s.get("cloud"))),
            e(str(s.get("address"))),
            e(listed) if isinstance(listed, str) else "yes" if listed else "no",
            f"{s.get('ok')}/{s.get('probes')}" + _kinds_cell(s.get("kinds")), verdict,
            "" if goodput is None else f"{float(goodput):,.0f} kbit/s",
            e(", ".join(f"{k}×{v}" for k, v in sorted(outcomes.items()))),
        ]))  # fmt: skip
    return f"<table>{''.join(rows)}</table>"


def _kinds_cell(kinds: Any) -> str:
    text = kinds_text(kinds)
    return f'<br><span class="note">{html.escape(text)}</span>' if text else ""


def _switch_section(summary: dict[str, Any]) -> str:
    """The first ISP's TSPU switch after the run: the bulk transfer it carried, its flows."""
    flows = summary.get("tspu_flows")
    if not isinstance(flows, list):
        return ""
    e = html.escape
    bulk = summary.get("bulk") or {}
    events = summary.get("controller_events") or {}
    rows = [row(["table", "priority", "match", "actions", "packets", "bytes"], "th")]  # wraps
    for f in flows:
        rows.append(row([str(f["table"]), str(f["priority"]), e(f["match"]), e(f["actions"]),
                          f"{f['n_packets']:,}", f"{f['n_bytes']:,}"]))  # fmt: skip
    return f"""<h2>The TSPU switch</h2>
<p class="note">Flow counters of the first ISP's TSPU after the run. Judged traffic is carried by
the switch; the controller logged {events.get("verdict", 0)} verdicts. Bulk transfer:
{e(str(bulk.get("bytes", "-")))} bytes from {e(str(bulk.get("service", "-")))} at
{e(str(bulk.get("mbit_s", "-")))} Mbit/s.</p>
<div class="scroll"><table class="flows">{"".join(rows)}</table></div>"""


def _run_notes(summary: dict[str, Any]) -> str:
    """Lateness (the run fell behind scenario time) and lab bring-up times, from summary.json."""
    notes = ""
    late = summary.get("lateness_s")
    if isinstance(late, int | float):
        notes += f" The run fell behind its scenario clock by at most {late:,.1f} real seconds."
    timings = summary.get("lab_timings_s")
    if isinstance(timings, dict) and timings:
        notes += (
            " Lab bring-up: "
            + html.escape(", ".join(f"{k} {v} s" for k, v in timings.items()))
            + "."
        )
    return notes


def render_run_html(
    run_dir: Path,
    meta: dict[str, Any],
    tl: Timeline,
    results: list[ExpectationResult],
    summary: dict[str, Any],
    faults: str = "",
) -> str:
    """`faults`: the "Faults" section's HTML (tspulab.metrics.faults_section), if any."""
    e = html.escape
    name = str(meta.get("name") or run_dir.name)
    start = (
        f"scenario clock starts {e(str(meta['clock_start']))}"
        if meta.get("clock_start")
        else "scenario time since the run's start"
    )
    speed = (
        f", {float(meta['clock_speed']):,.0f} scenario seconds per real second"
        if meta.get("clock_speed")
        else ""
    )
    n_probes = sum(
        p.summary.services.__len__() and sum(s.probes for s in p.summary.services)
        for (kind, _, _), p in tl.points.items()
        if kind == "round"
    )
    netem = meta.get("netem", (summary.get("environment") or {}).get("netem"))
    datapath = meta.get("datapath", (summary.get("environment") or {}).get("datapath", "?"))
    env = (
        "available"
        if netem
        else "not available on this kernel: links have no emulated delay or loss, so goodput and "
        "time to first byte are those of the host, not of a real access network"
    )
    delays = meta.get("delays") or (summary.get("environment") or {}).get("delays")
    if delays:  # what the run had (tspulab.lab.linkshape): applied, or not and why
        links = delays.get("links") or []
        shaped = ", ".join(sorted({f"{x['class']} {x['delay_ms']:g} ms" for x in links}))
        env += (
            f"; link delays applied ({shaped})"
            if delays.get("applied")
            else f"; link delays not applied: {delays.get('why', '?')}"
        )
    per_isp = "".join(f"<h3>{e(isp)}</h3>{_step_table(tl, isp)}" for isp in tl.isps)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tspulab report: {e(name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: .8em 0; }}
td, th {{ border: 1px solid #ccc; padding: .25em .5em; text-align: left; font-size: 85%; vertical-align: top; }}
th {{ background: #f0f0f0; }}
td {{ overflow-wrap: anywhere; }}
table.num td {{ overflow-wrap: normal; }}
table.num td:last-child {{ min-width: 10em; }}
table.flows td {{ font-family: monospace; font-size: 75%; }}
table.expect td:last-child {{ font-size: 80%; color: #444; }}
table.expect td:first-child {{ white-space: nowrap; }}
div.scroll {{ max-width: 100%; overflow-x: auto; }}
p.assume {{ background: #f7f7f0; border-left: 3px solid #b26a00; padding: .4em .7em; font-size: 90%; }}
.good {{ color: #1a7f37; }} .bad {{ color: #c62828; }} .warn {{ color: #b26a00; }}
.note {{ color: #666; font-size: 90%; }}
img.fig {{ width: 100%; max-width: 1320px; display: block; margin: .5em 0 1.5em; }}
h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }}
</style></head><body>
<h1>tspulab report: {e(name)}</h1>
<p class="note">scenario file {e(str(meta.get("scenario", "?")))} · run directory {e(str(run_dir))} ·
{start}{speed} · {len(tl.steps)} steps, {len(tl.rounds)} probe rounds, {n_probes:,} direct reachability probes</p>
{_contract_note(summary)}
{_isp_list(meta, tl)}
<h2>Where it ended</h2>
{_headline(tl)}
<h2>Expectations</h2>
{_expect_table(results)}
{f"<h2>Faults</h2>{faults}" if faults else ""}
<h2>Registry: blocked addresses over time</h2>
{_img(blocked_addresses_png(tl), "blocked addresses over time")}
<h2>Targets and collateral damage over time</h2>
<p class="note">Per ISP and probe round. A service is broken when fewer than half of its probes in the
round succeed; collateral damage is the share of innocent services broken (plain, and weighted by
their users); "via" lines are the share of probes of target services made through a circumvention
method that reached them.</p>
{_img(damage_png(tl), "collateral damage and target reachability")}
<h2>Reachability per service</h2>
{_img(heatmap_png(tl), "service × time reachability")}
<h2>Figures per step</h2>
<p class="note">Each step lasts from its timeline entry to the next. Blocked addresses are those in
effect on the ISP's TSPU at the end of the step (registry changes reach an ISP after its update
delay); over-blocking is blocked addresses per address the targets use.</p>
{per_isp}
{populations_section(meta, tl)}
<h2>Circumvention</h2>
<p class="note">Share of probes of each target made through each method that reached it.</p>
{_circumvention_table(tl)}
<h2>Throughput and time to first byte</h2>
{_performance(tl)}
<h2>Services over the whole run</h2>
<p class="note">Every direct probe of every ISP together. Broken: fewer than half of the probes
reached the service (probes of https, http, quic, ttfb; dns and ping, listed per kind under the
count, judge only a service nothing else probed); degraded: reachable but slower than the
scenario's threshold.</p>
{_services_table(summary, tl)}
{_switch_section(summary)}
{boxes_html(summary)}
<h2>Timeline</h2>
{_events_table(tl)}
<h2>Environment</h2>
<p class="note">Datapath: {e(str(datapath))}. netem (emulated delay and loss): {e(env)}.{_run_notes(summary)}</p>
</body></html>
"""
