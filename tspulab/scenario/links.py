"""Link delay, jitter and loss in the scenario language: the optional `links:` section.

Every link of the lab belongs to a class, found from the topology's node roles
(`tspulab.lab.linkshape`):

    subscriber ── access switch        fibre | dsl | mobile  (the ISP's access technology)
    ISP border router ── exchange       exchange
    exchange ── cloud host              domestic | foreign    (the cloud's `domestic` flag)
    exchange ── resolver (dns1)         domestic
    access ── TSPU ── border router     none: the TSPU sits next to the subscribers (§1)

A class has a `delay` (what the link adds to a round trip, split evenly between the two
directions), a `jitter` (the spread of that delay, split the same way) and a `loss` (the chance that
each packet is lost, in each direction). The defaults come from published measurements cited in
docs/scenario.md ("Links"); a scenario overrides them per class, per ISP (its access technology)
and per cloud:

    links:
      access: fibre              # every ISP's subscribers, unless `isps` says otherwise
      isps: {megafon: mobile}
      classes:
        foreign: {delay: 45ms}
      clouds:
        hetzner: {delay: 60ms, loss: 0.1%}

A scenario with `links:` requires delays (`required: true`, the default): where the kernel has no
netem the run refuses it unless `--no-delays` is given. A scenario without `links:` runs with no
emulated delay, as before. Either way run.json says what the run had.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from tspulab.dpi.yamlload import ErrorLocation, YamlDocument, did_you_mean
from tspulab.scenario.scalars import Bool, Section, Str

AccessKind = Literal["fibre", "dsl", "mobile"]
LinkClass = Literal["fibre", "dsl", "mobile", "exchange", "domestic", "foreign"]
LINK_CLASSES: tuple[LinkClass, ...] = ("fibre", "dsl", "mobile", "exchange", "domestic", "foreign")
MAX_DELAY_MS = 10_000.0

_TIME = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s)")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def _parse_millis(value: object) -> float:
    """'25ms', '0.5ms', '1s', '300us' -> milliseconds."""
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        shown = f"; write '{value}ms' for milliseconds" if type(value) in (int, float) else ""
        raise PydanticCustomError(
            "millis",
            "expected a time such as '25ms', '0.5ms' or '1s', got {input}{shown}",
            {"input": repr(value), "shown": shown},
        )
    ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
    if ms > MAX_DELAY_MS:
        raise PydanticCustomError(
            "millis",
            "{value} is more than {max} s",
            {"value": value, "max": f"{MAX_DELAY_MS / 1000:g}"},
        )
    return ms


def _parse_percent(value: object) -> float:
    """'0.5%' -> 0.5 (a percentage, 0 to 100)."""
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        shown = f"; write '{value}%'" if type(value) in (int, float) else ""
        raise PydanticCustomError(
            "percent",
            "expected a percentage such as '0.5%', got {input}{shown}",
            {"input": repr(value), "shown": shown},
        )
    pct = float(match.group(1))
    if pct > 100:
        raise PydanticCustomError("percent", "{value} is more than 100%", {"value": value})
    return pct


Millis = Annotated[
    float,
    PlainValidator(_parse_millis),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(us|ms|s)$"}),
]
Percent = Annotated[
    float,
    PlainValidator(_parse_percent),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?%$"}),
]


@dataclass(frozen=True)
class Shape:
    """What one link does to packets, resolved: round-trip delay and jitter, per-direction loss."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    @property
    def empty(self) -> bool:
        return self.delay_ms == 0 and self.jitter_ms == 0 and self.loss_pct == 0

    def to_json(self) -> dict[str, float]:
        return {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms, "loss_pct": self.loss_pct}


#: Defaults per class, from published measurements (docs/scenario.md, "Links", has the sources):
#: round-trip time a link adds, its spread, and loss each way.
DEFAULTS: Mapping[LinkClass, Shape] = {
    # GPON/FTTB to the ISP's first router: 1-3 ms (FCC MBA: fibre lines the lowest latency).
    "fibre": Shape(delay_ms=2.0),
    # ADSL with interleaving adds 10-20 ms over fibre (FCC MBA: DSL ~25 ms vs fibre ~10 ms).
    "dsl": Shape(delay_ms=15.0, jitter_ms=2.0),
    # LTE in Russia: 46-57 ms to the nearest Speedtest server (Ookla for MegaFon, MTS, Beeline,
    # Tele2), of which a few ms are the domestic path.
    "mobile": Shape(delay_ms=40.0, jitter_ms=8.0),
    # ISP border to the exchange in the same city (MSK-IX): about a millisecond.
    "exchange": Shape(delay_ms=1.0),
    # Domestic services: a few ms (Moscow to St Petersburg about 10 ms; within Moscow 1-3 ms).
    "domestic": Shape(delay_ms=4.0),
    # Foreign clouds: 40-60 ms from Moscow (WonderProxy: Moscow-Paris 56 ms, Moscow-Zurich 60 ms;
    # Frankfurt and Amsterdam nearer 40 ms).
    "foreign": Shape(delay_ms=50.0),
}


class LinkShape(Section):
    """Overrides of one link class (or one cloud's link); a field left out keeps the default."""

    delay: Millis | None = None
    """Round-trip time the link adds, split evenly between its two directions."""
    jitter: Millis | None = None
    """Spread of that delay (netem's jitter, split the same way); packets keep their order."""
    loss: Percent | None = None
    """Chance that a packet is lost, in each direction."""

    def over(self, base: Shape) -> Shape:
        return Shape(
            delay_ms=base.delay_ms if self.delay is None else self.delay,
            jitter_ms=base.jitter_ms if self.jitter is None else self.jitter,
            loss_pct=base.loss_pct if self.loss is None else self.loss,
        )


class Links(Section):
    """Delay, jitter and loss per link class (applied with netem where the kernel has it)."""

    required: Bool = True
    """Refuse to run without netem (unless `tspulab run --no-delays`); false: apply where it can."""
    access: AccessKind = "fibre"
    """The subscribers' access technology, for every ISP not listed in `isps`."""
    isps: dict[Str, AccessKind] = Field(default_factory=dict)
    """ISP name -> its subscribers' access technology."""
    classes: dict[LinkClass, LinkShape] = Field(default_factory=dict)
    """Overrides of the default shape of a class."""
    clouds: dict[Str, LinkShape] = Field(default_factory=dict)
    """Cloud name -> overrides of its exchange link (over its domestic/foreign class)."""

    def class_shape(self, cls: LinkClass) -> Shape:
        override = self.classes.get(cls)
        return DEFAULTS[cls] if override is None else override.over(DEFAULTS[cls])

    def access_of(self, isp: str) -> AccessKind:
        return self.isps.get(isp, self.access)

    def cloud_class(self, domestic: bool) -> LinkClass:
        return "domestic" if domestic else "foreign"

    def cloud_shape(self, cloud: str, domestic: bool) -> Shape:
        base = self.class_shape(self.cloud_class(domestic))
        override = self.clouds.get(cloud)
        return base if override is None else override.over(base)

    def rtt_ms(self, isp: str, cloud: str, domestic: bool) -> float:
        """Round-trip time a subscriber of `isp` has to `cloud` by configuration (no jitter)."""
        return (
            self.class_shape(self.access_of(isp)).delay_ms
            + self.class_shape("exchange").delay_ms
            + self.cloud_shape(cloud, domestic).delay_ms
        )


# --- cross-checks (file:line:field) ---------------------------------------------------------


def check_links(doc: YamlDocument, default_isp: str = "isp") -> Iterator[ErrorLocation]:
    """ISP and cloud names under `links:` must name ISPs and clouds of the scenario."""
    data = doc.data if isinstance(doc.data, dict) else {}
    raw = data.get("links")
    if not isinstance(raw, dict):
        return
    isps = _names(data.get("isps")) if data.get("isps") is not None else [default_isp]
    clouds = _names(data.get("clouds"))
    for key, known, kind in (("isps", isps, "ISP"), ("clouds", clouds, "cloud")):
        section = raw.get(key)
        if not isinstance(section, dict):
            continue
        for name in section:
            if isinstance(name, str) and name not in known:
                hint = did_you_mean(name, known) or f" ({kind}s: {', '.join(known) or 'none'})"
                yield doc.error(("links", key, name), f"unknown {kind} '{name}'{hint}")


def _names(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def parse_links(raw: Any) -> Links:
    """Validate a `links:` mapping on its own (tests, tools); ValidationError when invalid."""
    return Links.model_validate(raw)


__all__ = [
    "DEFAULTS",
    "LINK_CLASSES",
    "AccessKind",
    "LinkClass",
    "LinkShape",
    "Links",
    "Shape",
    "ValidationError",
    "check_links",
    "parse_links",
]
