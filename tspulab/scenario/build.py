"""From a validated scenario to what the lab needs: registry, topology spec, sites, DNS records.

Pure (no root, no Mininet objects), so the mapping from a scenario file to flow rules and hosts is
unit-tested without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry, load_inline, load_list, load_rkn_dump
from tspulab.lab.services import Site
from tspulab.scenario.model import RegistrySource, Scenario
from tspulab.topologies.single_isp import CloudSpec, SingleIspSpec


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
    """Names and addresses of everything the lab will run for a scenario."""

    topology: SingleIspSpec
    #: cloud name -> Mininet host name (host names must be short: they prefix interface names)
    cloud_hosts: dict[str, str]
    #: Mininet host name -> the sites its nginx serves
    sites: dict[str, tuple[Site, ...]]
    dns_records: dict[str, str]
    subscribers: tuple[str, ...]


def plan_lab(scenario: Scenario, switch_prefix: str = "") -> LabPlan:
    cloud_hosts = {cloud.name: f"cl{i}" for i, cloud in enumerate(scenario.clouds, start=1)}
    clouds = tuple(
        CloudSpec(cloud_hosts[c.name], tuple(str(p) for p in c.prefixes), c.name)
        for c in scenario.clouds
    )
    spec = SingleIspSpec(
        subscribers=scenario.topology.subscribers,
        clouds=clouds,
        dns_address=str(scenario.dns.address),
        switch_prefix=switch_prefix,
    )
    sites: dict[str, list[Site]] = {}
    dns: dict[str, str] = {}
    for service in scenario.services:
        host = cloud_hosts[service.cloud]
        sites.setdefault(host, []).append(
            Site(service.name, tuple(service.domains), str(service.address))
        )
        for domain in service.domains:
            dns[domain] = str(service.address)
    subscribers = tuple(f"sub{i}" for i in range(1, scenario.topology.subscribers + 1))
    return LabPlan(
        topology=spec,
        cloud_hosts=cloud_hosts,
        sites={h: tuple(s) for h, s in sites.items()},
        dns_records=dns,
        subscribers=subscribers,
    )
