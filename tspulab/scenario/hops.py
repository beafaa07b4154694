"""`hops:` in the scenario language: where an ISP's TSPU and border router sit, in router hops.

    topology:
      name: single-isp
      hops: {tspu: 2, border: 5}     # every ISP's, unless the ISP says otherwise
    isps:
      - name: rostelecom
        hops: {tspu: 5, border: 5}   # the TSPU on the border's uplink (backbone placement)

`tspu` counts the routers between the subscriber and the TSPU (0: before the first router, the
default), `border` the routers up to and including the ISP's border router (default 1: the
subscribers' gateway is the border, the topology of a scenario without `hops`). The routers are
real (topologies/hops.py): each decrements the TTL and answers an expired packet with ICMP
time-exceeded, so a fake with TTL `tspu + 1` reaches the TSPU with TTL 1 and dies at the next
router. tspu-behaviour.md §1: the TSPU within 2 hops of the target in 70 % of located cases, the
Twitter throttler within the first 5, ISP filters at hops 5-8, TSPU also on backbone links.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from tspulab.scenario.scalars import Int, Section
from tspulab.topologies.hops import MAX_BORDER_HOP, PathHops


class Hops(Section):
    """Router hops from a subscriber to its ISP's border router, and the TSPU's place among them."""

    border: Int = Field(default=1, ge=1, le=MAX_BORDER_HOP)
    """Routers from the subscriber to the ISP's border router, the border included."""
    tspu: Int = Field(default=0, ge=0, le=MAX_BORDER_HOP)
    """Routers between the subscriber and the TSPU: 0 (next to the subscribers) to `border`
    (on the border's uplink)."""

    @field_validator("tspu")
    @classmethod
    def _inside_the_isp(cls, value: int, info: ValidationInfo) -> int:
        border = info.data.get("border")
        if isinstance(border, int) and value > border:
            raise PydanticCustomError(
                "hops",
                "the TSPU after {value} routers is beyond the border router at hop {border}; "
                "use at most border ({border}: on the border's uplink) or raise border",
                {"value": value, "border": border},
            )
        return value

    def path(self) -> PathHops:
        return PathHops(tspu=self.tspu, border=self.border)
