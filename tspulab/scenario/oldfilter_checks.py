"""Checks of `isps[].old_filter` against the rest of the file, each at its own line and field.

- its own `registry` sources: as the top-level `registry` (exactly one kind, files exist);
- the block page address (given, or the default 192.0.2.<n> of the n-th ISP) must be a usable
  public unicast address, outside every cloud's prefixes (a cloud owns every address of its
  prefixes), not the resolver's, a service's or a method's, and each ISP's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address

from tspulab.dpi.yamlload import ErrorLocation, Loc
from tspulab.scenario.campaign import Circumvention
from tspulab.scenario.check_context import (
    Context,
    check_registry_sources,
    valid,
    valid_items,
)
from tspulab.scenario.model import Dns, Topology
from tspulab.scenario.oldfilter_config import default_blockpage
from tspulab.scenario.scalars import IPAddress, lab_address_problem


def check_old_filters(ctx: Context) -> Iterator[ErrorLocation]:
    doc = ctx.doc
    raw_isps = ctx.data.get("isps")
    dns = valid(Dns, ctx.data.get("dns", {}))
    taken: dict[IPAddress, str] = dict((a, owner) for a, (owner, _) in ctx.addresses.items())
    if dns is not None:
        taken.setdefault(dns.address, "the resolver (dns.address)")
    for _, method in valid_items(Circumvention, ctx.data.get("circumvention")):
        if method.address is not None:
            taken.setdefault(method.address, f"method '{method.name}'")
    pages: dict[IPAddress, str] = {}
    topology = valid(Topology, ctx.data.get("topology"))
    for i, isp in ctx.isps:
        flt = isp.old_filter
        if flt is None:
            continue
        loc: Loc = ("isps", i, "old_filter")
        hops = isp.hops or (topology.hops if topology is not None else None)
        if flt.hop is not None and hops is not None and flt.hop > hops.border:
            yield doc.error(
                (*loc, "hop"),
                f"the filter after {flt.hop} routers is beyond the ISP's border router at hop "
                f"{hops.border}; use at most {hops.border} (the border's uplink) or raise "
                "hops.border",
            )
        if flt.registry is not None and isinstance(raw_isps, list):
            raw = raw_isps[i].get("old_filter", {}).get("registry")
            yield from check_registry_sources(doc, (*loc, "registry"), raw, ctx.path)
        given = flt.blockpage is not None
        address: IPAddress = flt.blockpage or IPv4Address(default_blockpage(i + 1))
        where: Loc = (*loc, "blockpage") if given else loc
        what = "" if given else f" (the default block page address of ISP {i + 1}; set blockpage)"
        if given:
            problem = lab_address_problem(address)
            if problem is not None:
                yield doc.error(where, problem)
                continue
        clouds = [
            f"cloud '{name}' ({prefix})"
            for name, cloud in ctx.clouds.items()
            for prefix in cloud.prefixes
            if prefix.version == address.version and address in prefix
        ]
        if clouds:
            yield doc.error(
                where, f"block page {address}{what} is inside {clouds[0]}: a cloud answers on "
                "every address of its prefixes; the block page needs an address of its own",
            )  # fmt: skip
        elif address in taken:
            yield doc.error(where, f"block page {address}{what} is already {taken[address]}")
        elif address in pages:
            yield doc.error(
                where, f"block page {address}{what} is already the block page of {pages[address]}"
            )
        pages.setdefault(address, f"ISP '{isp.name}'")
