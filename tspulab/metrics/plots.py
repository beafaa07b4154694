"""The campaign report's figures, drawn with matplotlib's Agg backend into PNG bytes.

Every function takes a `Timeline` and returns a PNG (bytes), or None when the run did not measure
what the figure shows. The x axis is scenario time: dates when the scenario has clock.start,
days since the start otherwise; timeline entries are drawn as labelled vertical lines.
"""

from __future__ import annotations

import io
import math
import statistics
from datetime import datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: PNGs only (must precede pyplot)
import matplotlib.dates
import matplotlib.pyplot as plt
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.ticker import FuncFormatter

from tspulab.metrics.summary import DIRECT
from tspulab.metrics.timeline import Timeline

mdates: Any = matplotlib.dates  # its locator and formatter classes carry no annotations

WIDTH_IN = 11.0
DPI = 120  # ~1,300 px wide: sharp at the page width, scaled down on narrow screens
ISP_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
# Red (unreachable) → yellow (the broken threshold, half) → green (reachable).
REACH_CMAP = LinearSegmentedColormap.from_list(
    "reach", [(0.0, "#b71c1c"), (0.49, "#f57c00"), (0.5, "#fdd835"), (1.0, "#1a7f37")]
)


def _x(tl: Timeline, t_s: float) -> Any:
    if tl.clock_start is not None:
        return (tl.clock_start + timedelta(seconds=t_s)).replace(tzinfo=None)
    return t_s / 86400


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _time_axis(tl: Timeline, ax: Any) -> None:
    if tl.clock_start is not None:
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b\n%H:%M"))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=5, maxticks=12))
        ax.set_xlabel("scenario time (UTC)")
    else:
        ax.set_xlabel("scenario time (days since start)")
    ax.grid(True, alpha=0.3)


def _end_s(tl: Timeline) -> float:
    times = [b.start_s for b in tl.rounds] + [p.t_s for p in tl.registry]
    times += [b.start_s for b in tl.steps]
    last = max(times, default=0.0)
    return last + max(last * 0.03, 3600.0)


def _step_label(ax: Any, x: Any, text: str) -> None:
    """A timeline entry's label above the axes, slanted so that close entries stay legible."""
    ax.annotate(
        text,
        (x, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 3),
        textcoords="offset points",
        rotation=30,
        ha="left",
        va="bottom",
        fontsize=7.5,
        color="#333",
    )


def _steps(tl: Timeline, ax: Any, label: bool) -> None:
    """Timeline entries as dashed vertical lines, labelled above the axes."""
    for b in tl.steps:
        if b.start_s <= 0:
            continue
        ax.axvline(_x(tl, b.start_s), color="#555", lw=0.8, ls="--", alpha=0.6)
        if label:
            _step_label(ax, _x(tl, b.start_s), b.key)


def _human(v: float, _pos: object = None) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def rate(kbps: float, _pos: object = None) -> str:
    """A goodput in kbit/s as people read it: 417 kbit/s, 55.3 Mbit/s, 1.2 Gbit/s."""
    for div, unit in ((1e6, "Gbit/s"), (1e3, "Mbit/s")):
        if kbps >= div:
            return f"{kbps / div:.3g} {unit}"
    return f"{kbps:.3g} kbit/s"


def blocked_addresses_png(tl: Timeline) -> bytes | None:
    """Addresses the registry blocks, per ISP as it takes effect there (log scale)."""
    if not tl.registry:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.6))
    end = _end_s(tl)
    top = 1
    for i, isp in enumerate(tl.isps):
        pts = [p for p in tl.registry if p.isp == isp]
        if not pts:
            continue
        xs = [_x(tl, p.t_s) for p in pts] + [_x(tl, end)]
        # log scale: an empty registry is drawn at 1 address, the axis says so
        ys = [max(p.blocked_addresses, 1) for p in pts]
        ys.append(ys[-1])
        top = max(top, *ys)
        ax.step(
            xs,
            ys,
            where="post",
            color=ISP_COLOURS[i % len(ISP_COLOURS)],
            lw=2 - 0.4 * i,
            label=isp,
            alpha=0.9,
        )
    ax.set_yscale("log")
    ax.set_ylim(0.8, 10 ** (math.log10(top) + 0.6))
    ax.yaxis.set_major_formatter(FuncFormatter(_human))
    ax.set_ylabel("blocked addresses")
    ax.set_title(
        "Addresses blocked by the registry, per ISP (log scale; 1 = empty registry)", pad=52
    )
    _steps(tl, ax, label=True)
    _time_axis(tl, ax)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def damage_png(tl: Timeline) -> bytes | None:
    """Per ISP and probe round: targets reachable, collateral damage, circumvention success."""
    isps = [
        isp
        for isp in tl.isps
        if tl.series("collateral_damage", isp) or tl.series("target_reachability", isp)
    ]
    if not isps:
        return None
    fig, axes = plt.subplots(
        len(isps), 1, figsize=(WIDTH_IN, 2.5 * len(isps) + 0.6), sharex=True, squeeze=False
    )
    lines: list[tuple[str, str | None, str, str, str, float]] = [
        ("target_reachability", None, "targets reachable (share of direct probes)", "#1a7f37",
         "-", 2.2),
        ("collateral_damage_subscribers", None, "collateral damage per subscriber", "#c62828",
         "-", 2.2),
        ("collateral_damage", None, "collateral damage, binary (pooled probes)", "#c62828",
         ":", 1.2),
        ("collateral_damage_weighted", None, "collateral damage, binary, weighted by users",
         "#c62828", "--", 1.0),
        ("collateral_degraded", None, "innocent broken or degraded (binary)", "#b26a00", ":",
         1.2),
    ]  # fmt: skip
    if tl.populations():
        lines.append(
            ("population_damage", None, "population members broken, per subscriber", "#6a1b9a",
             "-", 1.6)
        )  # fmt: skip
    method_colours = ["#1f77b4", "#9467bd", "#17becf", "#8c564b"]
    for j, m in enumerate(tl.methods):
        lines.append(
            (
                "circumvention_success",
                m,
                f"target via {m}",
                method_colours[j % len(method_colours)],
                "-.",
                1.2,
            )
        )
    for ax, isp in zip(axes[:, 0], isps, strict=True):
        for metric, method, label, colour, ls, lw in lines:
            pts = tl.series(metric, isp, "round", method)
            if pts:
                ax.plot(
                    [_x(tl, t) for t, _ in pts],
                    [v for _, v in pts],
                    ls,
                    color=colour,
                    lw=lw,
                    label=label,
                    marker="o",
                    ms=2.5,
                )
        ax.set_ylim(-0.05, 1.05)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:.0f} %"))
        ax.set_ylabel(isp, fontweight="bold")
        _steps(tl, ax, label=ax is axes[0, 0])
        _time_axis(tl, ax)
        if ax is not axes[-1, 0]:
            ax.set_xlabel("")
    axes[0, 0].set_title("Per ISP and probe round: targets reachable, collateral damage", pad=52)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02 - 0.025 * math.ceil(len(labels) / 3)),
    )
    return _png(fig)


def heatmap_png(tl: Timeline, kind: str = "round") -> bytes | None:
    """Service × time: share of successful direct probes, one panel per ISP."""
    panels = []
    for isp in tl.isps:
        names, buckets, rows = _fold_populations(tl, *tl.reachability_matrix(isp, kind, DIRECT))
        if any(v is not None for row in rows for v in row):
            panels.append((isp, names, buckets, rows))
    if not panels:
        return None
    n_services = len(panels[0][1])
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(WIDTH_IN, (0.28 * n_services + 0.9) * len(panels) + 0.8),
        squeeze=False,
    )
    image = None
    for ax, (isp, names, buckets, rows) in zip(axes[:, 0], panels, strict=True):
        grid = [[math.nan if v is None else v for v in row] for row in rows]
        cmap = REACH_CMAP.with_extremes(bad="#e0e0e0")
        image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        roles = {s.name: s.role for s in tl.services}
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(
            [f"{n} ({'T' if roles.get(n) == 'target' else 'i'})" for n in names], fontsize=8
        )
        ax.set_ylabel(isp, fontweight="bold")
        every = max(1, len(buckets) // 14)
        ticks = list(range(0, len(buckets), every))
        ax.set_xticks(ticks)
        last = ax is axes[-1, 0]
        ax.set_xticklabels(
            [_short_time(tl, buckets[i].start_s) for i in ticks] if last else [], fontsize=7
        )
        previous = None
        for i, b in enumerate(buckets):
            if previous is not None and b.step != previous:
                ax.axvline(i - 0.5, color="white", lw=2.5)
                if ax is axes[0, 0]:
                    _step_label(ax, i - 0.5, b.step)
            previous = b.step
    axes[0, 0].set_title(
        "Reachability per service and probe round: share of direct probes that "
        "succeeded\n(T = target, i = innocent; below 50 % = broken; grey = not "
        "probed; columns are probe rounds)",
        pad=52,
        fontsize=10,
    )
    if image is not None:
        bar = fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.025, pad=0.01)
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:.0f} %"))
    return _png(fig)


def _fold_populations(
    tl: Timeline, names: list[str], buckets: list[Any], rows: list[list[float | None]]
) -> tuple[list[str], list[Any], list[list[float | None]]]:
    """One row per population (the mean reachability of its members) instead of a row per
    member: 60 small sites would make the map unreadable, and the report gives their counts."""
    population = {s.name: s.population for s in tl.services if s.population}
    out_names: list[str] = []
    out_rows: list[list[float | None]] = []
    members: dict[str, list[list[float | None]]] = {}
    for name, row in zip(names, rows, strict=True):
        if name in population:
            members.setdefault(population[name], []).append(row)
        else:
            out_names.append(name)
            out_rows.append(row)
    for pop, member_rows in members.items():
        out_names.append(f"{pop}: {len(member_rows)} members, mean")
        column = []
        for j in range(len(buckets)):
            seen = [r[j] for r in member_rows if r[j] is not None]
            column.append(sum(seen) / len(seen) if seen else None)  # type: ignore[arg-type]
        out_rows.append(column)
    return out_names, buckets, out_rows


def _short_time(tl: Timeline, t_s: float) -> str:
    x = _x(tl, t_s)
    if isinstance(x, datetime):
        return x.strftime("%d %b\n%H:%M")
    return f"{x:.2f} d"


def _service_goodputs(tl: Timeline, name: str) -> list[tuple[float, float]]:
    """(round start, median goodput over every ISP's direct transfers of the service)."""
    out = []
    for b in tl.rounds:
        values = []
        for isp in tl.isps:
            p = tl.point(b, isp)
            cell = p.service(name) if p else None
            values += cell.goodputs_kbps if cell else []
        if values:
            out.append((b.start_s, statistics.median(values)))
    return out


def performance_data(
    tl: Timeline,
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """What `performance_png` would draw: goodput points (> 0) per service and TTFB points per
    ISP, each without the entries that have nothing to draw (so no panel is ever empty)."""
    goodput = {s.name: _service_goodputs(tl, s.name) for s in tl.services}
    goodput = {k: [(t, g) for t, g in v if g > 0] for k, v in goodput.items()}
    goodput = {k: v for k, v in goodput.items() if v}
    ttfb = {isp: tl.series("ttfb_s", isp) for isp in tl.isps}
    ttfb = {k: v for k, v in ttfb.items() if v}
    return goodput, ttfb


def performance_png(tl: Timeline) -> bytes | None:
    """Median transfer goodput per service (all ISPs) and median time to first byte per ISP,
    each panel only when the run measured it; None when it measured neither."""
    goodput, ttfb = performance_data(tl)
    if not goodput and not ttfb:
        return None
    panels = (["goodput"] if goodput else []) + (["ttfb"] if ttfb else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH_IN, 3.6), squeeze=False)
    if goodput:
        _goodput_panel(tl, axes[0, 0], goodput)
    if ttfb:
        _ttfb_panel(tl, axes[0, len(panels) - 1], ttfb)
    for ax in axes[0]:
        _steps(tl, ax, label=False)
        _time_axis(tl, ax)
        if tl.clock_start is not None:
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    return _png(fig)


def _goodput_panel(tl: Timeline, ax: Any, goodput: dict[str, list[tuple[float, float]]]) -> None:
    cmap = plt.get_cmap("tab10")
    for i, (name, pts) in enumerate(goodput.items()):
        ax.plot(
            [_x(tl, t) for t, _ in pts],
            [g for _, g in pts],
            marker="o",
            ms=2.5,
            lw=1.2,
            color=cmap(i % 10),
            label=name,
        )
    ax.axhline(tl.degraded_below_kbps, color="#b26a00", lw=1, ls=":")
    ax.annotate(
        f"degraded below {tl.degraded_below_kbps:,.0f} kbit/s",
        (0.01, tl.degraded_below_kbps),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=7,
        color="#b26a00",
    )
    ax.set_yscale("log")
    top = max(g for pts in goodput.values() for _, g in pts)
    low = min([g for pts in goodput.values() for _, g in pts] + [tl.degraded_below_kbps])
    ax.set_ylim(low / 2, top * 4)
    ax.yaxis.set_major_formatter(FuncFormatter(rate))
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_title(
        "median transfer goodput per service (all ISPs; failed transfers not drawn)", fontsize=9
    )


def _ttfb_panel(tl: Timeline, ax: Any, ttfb: dict[str, list[tuple[float, float]]]) -> None:
    for i, isp in enumerate(tl.isps):
        if isp in ttfb:
            ax.plot(
                [_x(tl, t) for t, _ in ttfb[isp]],
                [v * 1000 for _, v in ttfb[isp]],
                marker="o",
                ms=2.5,
                color=ISP_COLOURS[i % len(ISP_COLOURS)],
                label=isp,
            )
    ax.set_ylim(bottom=0)
    ax.set_title("median time to first byte per ISP, ms (successful direct probes)", fontsize=9)
    ax.legend(fontsize=7)
