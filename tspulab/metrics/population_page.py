"""The report's populations: k of N members broken per subscriber with a Wilson interval, the
population's assumptions, and the members folded into one row of the whole-run services table."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from tspulab.metrics.html_parts import pct, shade, table
from tspulab.metrics.summary import PopulationFigure, SubscriberView
from tspulab.metrics.timeline import Timeline


def population_cell(fig: PopulationFigure | None) -> str:
    """'12.5 of 60 (21 %; 95 % 13–33 %)': members broken, averaged over subscribers."""
    if fig is None:
        return "–"
    k = f"{fig.broken:.3g}" if fig.broken != int(fig.broken) else f"{fig.broken:.0f}"
    return (
        f"{shade(fig.share)} {k} of {fig.n}<br>"
        f'<span class="note">95 % {100 * fig.low:.0f}–{100 * fig.high:.0f} %</span>'
    )


def population_text(view: SubscriberView, populations: list[str]) -> str:
    parts = []
    for name in populations:
        fig = view.population(name)
        if fig is not None:
            parts.append(
                f"{html.escape(name)}: {fig.broken:.3g} of {fig.n} broken "
                f"({pct(fig.share)}; 95 % {100 * fig.low:.0f}–{100 * fig.high:.0f} %)"
            )
    return "; ".join(parts)


def populations_section(meta: dict[str, Any], tl: Timeline) -> str:
    """Each population: its assumptions and source, and k of N broken per ISP and step."""
    names = tl.populations()
    if not names:
        return ""
    about = {str(p.get("name")): p for p in meta.get("populations") or [] if isinstance(p, dict)}
    e = html.escape
    out = [
        "<h2>Collateral damage in populations</h2>",
        '<p class="note">Members of a population are counted apart from the named services: '
        "members broken per subscriber (k of N, averaged over the ISP's subscribers with their "
        "weights) and a 95 % Wilson interval for the share of all such services that the "
        "members stand for.</p>",
    ]
    for name in names:
        members = [s for s in tl.services if s.population == name]
        p = about.get(name, {})
        out.append(f"<h3>{e(name)} ({len(members)} members)</h3>")
        if p.get("assumptions"):
            out.append(f'<p class="assume"><b>Assumptions:</b> {e(str(p["assumptions"]))}</p>')
        if p.get("source"):
            out.append(f'<p class="note">Source: {e(str(p["source"]))}</p>')
        rows = []
        for b in tl.steps:
            cells = [population_cell(pt.subscribers.population(name)) if pt else "–"
                     for pt in (tl.point(b, isp) for isp in tl.isps)]  # fmt: skip
            if any(c != "–" for c in cells):
                every = population_cell(tl.overall(b).population(name))
                rows.append([f"<b>{e(b.key)}</b>", *cells, every])
        out.append(table(["step", *[e(i) for i in tl.isps], "all subscribers"], rows))
    return "".join(out)


def fold_members(services: list[Any], population_of: dict[str, str | None]) -> list[dict[str, Any]]:
    """summary.json's services with each population's members folded into one row: its clouds,
    how many of its addresses the registry holds, probes and outcomes summed, members broken.
    `population_of`: service name -> its population (run.json's, which summary.json may lack)."""
    out: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in services:
        if not isinstance(s, dict):
            continue
        population = s.get("population") or population_of.get(str(s.get("name")))
        if population:
            groups.setdefault(str(population), []).append(s)
        else:
            out.append(s)
    for name, members in groups.items():
        outcomes: Counter[str] = Counter()
        for m in members:
            outcomes.update({str(k): int(v) for k, v in (m.get("outcomes") or {}).items()})
        clouds = Counter(str(m.get("cloud")) for m in members)
        listed = sum(bool(m.get("address_in_registry")) for m in members)
        broken = sum(bool(m.get("broken")) for m in members)
        out.append(
            {
                "name": f"{name} ({len(members)} members)",
                "role": "innocent",
                "cloud": ", ".join(f"{c} {n}" for c, n in clouds.most_common()),
                "address": "–",
                "address_in_registry": f"{listed} of {len(members)}",
                "ok": sum(int(m.get("ok") or 0) for m in members),
                "probes": sum(int(m.get("probes") or 0) for m in members),
                "verdict": f"{broken} of {len(members)} broken",
                "outcomes": dict(outcomes),
            }
        )
    return out
