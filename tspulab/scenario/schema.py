"""Loading and validating scenario files: every problem, as `file:line:col: field: message`.

`load_scenario` reads a file (`yamlload`), checks its structure against the models of
`tspulab.scenario.model` with pydantic, then checks how the sections relate (cloud names,
prefix containment and overlap, uniqueness, registry files), and reports all problems at once,
each at the line of the offending key or item. docs/scenario.md is the language reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from tspulab.dpi.yamlload import (
    ErrorLocation,
    ScenarioError,
    YamlDocument,
    describe_type,
    did_you_mean,
    listed,
    parse_yaml,
    pydantic_message,
    read_yaml,
)
from tspulab.scenario.campaign_checks import check_campaign
from tspulab.scenario.check_context import (
    CloudIndex,
    check_registry_sources,
    cloud_overlaps,
    valid_items,
)
from tspulab.scenario.faults import check_faults
from tspulab.scenario.links import check_links
from tspulab.scenario.model import (
    KNOWN_TOPOLOGIES,
    Cloud,
    Dns,
    IPAddress,
    Population,
    Probes,
    RegistrySource,
    Scenario,
    Service,
    Topology,
    data_dir,
    known_profiles,
    resolve_data_path,
    scenario_json_schema,
)

__all__ = [
    "KNOWN_TOPOLOGIES",
    "Cloud",
    "Dns",
    "ErrorLocation",
    "Probes",
    "RegistrySource",
    "Scenario",
    "ScenarioError",
    "Service",
    "Topology",
    "data_dir",
    "known_profiles",
    "load_scenario",
    "load_scenario_text",
    "resolve_data_path",
    "scenario_json_schema",
]

# --- cross-checks -------------------------------------------------------------------------


def _check_clouds(doc: YamlDocument, clouds: list[tuple[int, Cloud]]) -> Iterator[ErrorLocation]:
    first_of: dict[str, int] = {}
    for i, cloud in clouds:
        if cloud.name in first_of:
            line = doc.line_of(("clouds", first_of[cloud.name], "name"))
            yield doc.error(
                ("clouds", i, "name"), f"duplicate cloud name '{cloud.name}' (first at line {line})"
            )
        else:
            first_of[cloud.name] = i
    # Indexed, not pairwise: thousands of prefixes must not take minutes (issue 16).
    for i, cloud, k, prefix, j, other, theirs in cloud_overlaps(clouds):
        line = doc.line_of(("clouds", j, "prefixes"))
        yield doc.error(
            ("clouds", i, "prefixes", k),
            f"{prefix} of cloud '{cloud.name}' overlaps {theirs} of cloud "
            f"'{other.name}' (line {line})",
        )


def _cloud_holding(address: IPAddress, clouds: list[tuple[int, Cloud]]) -> Cloud | None:
    return next((c for _, c in clouds if any(address in p for p in c.prefixes)), None)


def _check_services(
    doc: YamlDocument,
    services: list[tuple[int, Service]],
    clouds: list[tuple[int, Cloud]],
    all_clouds_valid: bool,
    populations: dict[str, int] | None = None,
) -> Iterator[ErrorLocation]:
    """`populations`: the valid population names; None: not known (no check)."""
    cloud_by_name: dict[str, Cloud] = {}
    for _, cloud in clouds:
        cloud_by_name.setdefault(cloud.name, cloud)
    index = CloudIndex(cloud_by_name.values())
    names: dict[str, int] = {}
    domains: dict[str, tuple[int, str]] = {}
    addresses: dict[IPAddress, int] = {}
    for i, svc in services:
        if svc.name in names:
            yield doc.error(
                ("services", i, "name"),
                f"duplicate service name '{svc.name}' "
                f"(first at line {doc.line_of(('services', names[svc.name]))})",
            )
        names.setdefault(svc.name, i)
        for k, domain in enumerate(svc.domains):
            if domain in domains:
                j, owner = domains[domain]
                yield doc.error(
                    ("services", i, "domains", k),
                    f"domain {domain} is already "
                    f"used by service '{owner}' (line {doc.line_of(('services', j))})",
                )
            domains.setdefault(domain, (i, svc.name))
        if svc.address in addresses:
            j = addresses[svc.address]
            yield doc.error(
                ("services", i, "address"),
                f"address {svc.address} is already used "
                f"by service at line {doc.line_of(('services', j))}",
            )
        addresses.setdefault(svc.address, i)
        home = cloud_by_name.get(svc.cloud)
        if home is None:
            if all_clouds_valid:  # else the cloud may be one that failed to validate
                yield doc.error(
                    ("services", i, "cloud"),
                    f"unknown cloud '{svc.cloud}'"
                    + (
                        did_you_mean(svc.cloud, cloud_by_name)
                        or f" (clouds: {listed(cloud_by_name) or 'none'})"
                    ),
                )
        elif not index.holds(home.name, svc.address):
            prefixes = listed(home.prefixes)
            yield doc.error(
                ("services", i, "address"),
                f"{svc.address} is not inside cloud '{home.name}' ({prefixes})",
            )
        if (
            populations is not None
            and svc.population is not None
            and svc.population not in populations
        ):
            yield doc.error(
                ("services", i, "population"),
                f"unknown population '{svc.population}'"
                + (
                    did_you_mean(svc.population, populations)
                    or f" (populations: {listed(populations) or 'none'})"
                ),
            )


def _check_roles(doc: YamlDocument, services: list[tuple[int, Service]]) -> Iterator[ErrorLocation]:
    roles = {svc.role for _, svc in services}
    for role in ("target", "innocent"):
        if role not in roles:
            yield doc.error(("services",), f"needs at least one service with role: {role}")


def _cross_check(doc: YamlDocument, path: Path) -> Iterator[ErrorLocation]:
    data = doc.data if isinstance(doc.data, dict) else {}
    raw_clouds = data.get("clouds")
    clouds = valid_items(Cloud, raw_clouds)
    all_clouds_valid = isinstance(raw_clouds, list) and len(clouds) == len(raw_clouds)
    yield from _check_clouds(doc, clouds)
    dns_raw = data.get("dns", {})
    try:
        dns = Dns.model_validate(dns_raw)
    except ValidationError:
        pass
    else:
        holder = _cloud_holding(dns.address, clouds)
        if holder is not None:
            yield doc.error(
                ("dns", "address"),
                f"DNS address {dns.address} lies inside cloud '{holder.name}'; "
                "the resolver must be outside every cloud prefix",
            )
    raw_services = data.get("services")
    services = valid_items(Service, raw_services)
    raw_populations = data.get("populations")
    populations = valid_items(Population, raw_populations)
    if raw_populations is None or (
        isinstance(raw_populations, list) and len(populations) == len(raw_populations)
    ):  # else a service may name a population that failed to validate
        yield from _check_services(
            doc, services, clouds, all_clouds_valid, {p.name: i for i, p in populations}
        )
    else:
        yield from _check_services(doc, services, clouds, all_clouds_valid, None)
    if isinstance(raw_services, list) and len(services) == len(raw_services):
        yield from _check_roles(doc, services)
    yield from check_registry_sources(doc, ("registry",), data.get("registry"), path)
    yield from check_campaign(doc, path)
    yield from check_links(doc)
    yield from check_faults(doc)


def _structure_errors(doc: YamlDocument, err: ValidationError) -> Iterator[ErrorLocation]:
    details = err.errors()
    failed = {tuple(e["loc"]) for e in details}
    for e in details:
        loc = tuple(e["loc"])
        # A list whose bad item was dropped is then "too short": the item's error says it all.
        if e["type"] == "too_short" and any(f[: len(loc)] == loc != f for f in failed):
            continue
        yield doc.error(loc, pydantic_message(e, Scenario))


# --- entry point --------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every problem is reported in one ScenarioError."""
    return _validate(read_yaml(Path(path), str(path)), Path(path))


def load_scenario_text(text: str, path: str | Path = "<string>.yaml") -> Scenario:
    """Validate scenario YAML given as text, as if read from `path` (for relative files)."""
    return _validate(parse_yaml(text, str(path)), Path(path))


def _validate(doc: YamlDocument, path: Path) -> Scenario:
    file = doc.file
    if not isinstance(doc.data, dict):
        raise ScenarioError(
            [
                ErrorLocation(
                    file,
                    1,
                    1,
                    "",
                    "a scenario must be a mapping of "
                    f"keys (version, name, ...), got {describe_type(doc.data)}",
                )
            ]
        )
    errors: list[ErrorLocation] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as err:
        errors.extend(_structure_errors(doc, err))
    errors.extend(_cross_check(doc, path))
    if errors or scenario is None:
        raise ScenarioError(errors)
    scenario._path = path
    return scenario
