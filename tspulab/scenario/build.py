"""From a validated scenario to what the lab needs: registry, topology spec, sites, DNS records.

Pure (no root, no Mininet objects), so the mapping from a scenario file to flow rules and hosts is
unit-tested without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry, load_inline, load_list, load_rkn_dump
from tspulab.lab.services import Site
from tspulab.scenario.model import RegistrySource, Scenario
from tspulab.scenario.oldfilter_config import default_blockpage
from tspulab.topologies.multi_isp import CloudSpec, IspSpec, MultiIspSpec
from tspulab.topologies.oldfilter import OldFilterSpec


def build_registry(scenario: Scenario) -> Registry:
    """Every registry source of the scenario, merged (the exact set; aggregation comes later)."""
    return registry_from_sources(scenario, scenario.registry, "registry")


def registry_from_sources(
    scenario: Scenario, sources: Sequence[RegistrySource], where: str
) -> Registry:
    """Registry sources (top-level or a timeline entry's) as one registry."""
    registry = Registry()
    for index, source in enumerate(sources):
        if source.inline is not None:
            registry.merge(
                load_inline([str(n) for n in source.inline], source=f"{where}[{index}].inline")
            )
            continue
        if source.domains is not None:
            for j, pattern in enumerate(source.domains):
                registry.add_domain(
                    pattern, MatchKind(source.match), source=f"{where}[{index}].domains[{j}]"
                )
            continue
        path = scenario.registry_file(source)
        if source.format == "rkn-dump":
            registry.merge(load_rkn_dump(path, decisions=source.decisions))
        else:
            registry.merge(load_list(path))
    return registry


@dataclass(frozen=True)
class LabPlan:
    """Names and addresses of everything the lab will run for a scenario (one ISP or many)."""

    topology: MultiIspSpec
    #: scenario subscriber name (`sub1`, `rostelecom-2`) -> Mininet host (`i1s1`)
    host_of: dict[str, str]
    isp_of_host: dict[str, str]
    address_of_host: dict[str, str]
    #: cloud name -> Mininet host name (host names must be short: they prefix interface names)
    cloud_hosts: dict[str, str]
    #: every service's site: each cloud's nginx serves them all, so services can move by DNS
    sites: tuple[Site, ...]
    dns_records: dict[str, str]

    @property
    def subscribers(self) -> tuple[str, ...]:
        return tuple(self.host_of)


def plan_lab(scenario: Scenario) -> LabPlan:
    hosts = scenario.subscriber_hosts()
    host_of: dict[str, str] = {}
    isp_of_host: dict[str, str] = {}
    address_of_host: dict[str, str] = {}
    isp_specs = []
    for i, isp in enumerate(scenario.effective_isps(), start=1):
        hops = (isp.hops or scenario.topology.hops).path()
        spec = IspSpec(isp.name, isp.subscribers, hops)
        if isp.old_filter is not None:
            blockpage = isp.old_filter.blockpage or default_blockpage(i)
            spec = replace(spec, old_filter=OldFilterSpec(str(blockpage), isp.old_filter.hop))
        isp_specs.append(spec)
        for n, name in enumerate(hosts[isp.name], start=1):
            host_of[name] = spec.host(i, n)
            isp_of_host[name] = isp.name
            address_of_host[name] = spec.subscriber_ip(i, n)
    cloud_hosts = {c.name: f"cl{j}" for j, c in enumerate(scenario.clouds, start=1)}
    clouds = tuple(
        CloudSpec(cloud_hosts[c.name], tuple(str(p) for p in c.prefixes), c.name)
        for c in scenario.clouds
    )
    topology = MultiIspSpec(
        isps=tuple(isp_specs), clouds=clouds, dns_address=str(scenario.dns.address)
    )
    sites = tuple(Site(s.name, tuple(s.domains), str(s.address)) for s in scenario.services)
    dns = {d: str(s.address) for s in scenario.services for d in s.domains}
    return LabPlan(topology, host_of, isp_of_host, address_of_host, cloud_hosts, sites, dns)
