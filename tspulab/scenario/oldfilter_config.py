"""`isps[].old_filter:` in the scenario language: the ISP's own older filter beside the TSPU.

    isps:
      - name: rostelecom
        old_filter:                  # or `true` for every default, `false` (the default) for none
          http: redirect             # redirect | page | off: a listed HTTP Host: a 302, or the page
          https: reset               # reset | off: a listed TLS SNI: a RST after the ClientHello
          dns: blockpage             # blockpage | nxdomain | off: a listed name's DNS answer
          mode: passive              # passive | inline: whether the client's packet still goes on
          blockpage: 95.167.13.50    # the ISP's block page host (default 192.0.2.<n> for ISP n)
          hop: 5                     # on the link after 5 routers (default: the border's uplink)
          share: 0.135               # share of the registry's names it carries (default 1)
          lag: 1d                    # registry changes reach it this much scenario time later
          # registry: [...]          # or its own list instead of a copy of the published one

What each behaviour is, and its source, is in `tspulab/dpi/oldfilter.py` (tspu-behaviour.md §1,
§2.1, §4). The filter sits by default on the ISP border's uplink (`topologies/oldfilter.py`): in
the ISP's core, past the TSPU, as §1 locates ISP filters (hops 5-8, not co-located with the
TSPU; `isps[].hops.border` says how many routers that is); `hop` puts it on another link of the
ISP's path, counted as `hops.tspu` is (upstream of the TSPU when they share a link).

Coverage (§2.1): the TSPU blocked 9,655 registry domains uniformly, the ISPs' own filters at
Rostelecom and OBIT 1,302 and 3,943 of them; ISPs never block out-of-registry names. So by default
the filter carries the domain rules of the registry the TSPUs get (the top-level `registry` and
the timeline's changes), `lag` late and only `share` of them (a stable hash of each name picks
which); with `registry:` it carries that list instead, fixed (an old dump, say), and `share` and
`lag` do not apply.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tspulab.scenario.scalars import Address, Duration, Float, Int, Section, parse_duration
from tspulab.topologies.hops import MAX_BORDER_HOP

if TYPE_CHECKING:
    from tspulab.scenario.model import RegistrySource

#: default block page addresses: 192.0.2.<n> (TEST-NET-1, RFC 5737) for the n-th ISP
DEFAULT_BLOCKPAGE_NET = "192.0.2.0/24"


def default_blockpage(isp_index: int) -> str:
    return str(IPv4Address("192.0.2.0") + isp_index)


class OldFilter(Section):
    """The ISP's own older filter (tspu-behaviour.md §4); every key is optional."""

    http: Literal["redirect", "page", "off"] = "redirect"
    """A request whose Host is listed: an injected HTTP 302 to the block page, or the page."""
    https: Literal["reset", "off"] = "reset"
    """A ClientHello whose SNI is listed: an injected RST/ACK to the client."""
    dns: Literal["blockpage", "nxdomain", "off"] = "blockpage"
    """A UDP query for a listed name: answered with the block page's address, or NXDOMAIN."""
    mode: Literal["passive", "inline"] = "passive"
    """passive: the client's packet goes on beside the injection; inline: it is dropped."""
    blockpage: Address | None = None
    """The ISP's block page address (IPv4); None: 192.0.2.<n> for the n-th ISP."""
    hop: Int | None = Field(default=None, ge=0, le=MAX_BORDER_HOP)
    """Routers between the subscribers and the filter (at most the ISP's border); None: the
    border's uplink."""
    share: Float = Field(default=1.0, gt=0, le=1)
    """Share of the published registry's domain rules the filter carries (§2.1)."""
    lag: Duration = "0s"
    """How much later than the TSPU's update the filter's copy follows a registry change."""
    registry: tuple[RegistrySource, ...] | None = Field(default=None, min_length=1)
    """Its own list instead of a copy of the published registry (only its domain rules count)."""

    @property
    def lag_s(self) -> float:
        return parse_duration(self.lag)

    @field_validator("blockpage")
    @classmethod
    def _ipv4(cls, value: IPv4Address | IPv6Address | None) -> IPv4Address | IPv6Address | None:
        if value is not None and value.version != 4:
            raise PydanticCustomError(
                "old_filter",
                "{value} is not an IPv4 address (the block page and its DNS answers are IPv4)",
                {"value": str(value)},
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OldFilter:
        if self.registry is not None and ("share" in self.model_fields_set or self.lag != "0s"):
            raise PydanticCustomError(
                "old_filter",
                "share and lag make a copy of the published registry; with its own 'registry' "
                "the filter's list is fixed: leave them out",
            )
        return self


def coerce_old_filter(value: object) -> object:
    """`old_filter: true` is a filter with every default, `false` none."""
    if value is True:
        return {}
    if value is False:
        return None
    if value is not None and not isinstance(value, dict):
        raise PydanticCustomError(
            "old_filter",
            "expected true, false or a mapping of the filter's keys, got {value}",
            {"value": repr(value)},
        )
    return value
