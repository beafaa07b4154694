"""Controller configuration handed over by the lab as JSON files.

The lab writes `<run dir>/controller.json` (and the registry as `registry.json`) and starts the
launcher with its path; apps read it in their constructor. Keeping them files (not CLI flags)
lets the run directory show exactly what the controller was told.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tspulab.contracts import ControllerFile
from tspulab.controllers.pipeline import IPNetwork, TspuPorts
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.oldfilter import FilterSettings
from tspulab.dpi.registry import Registry

ENV_VAR = "TSPULAB_CONTROLLER_CONFIG"


@dataclass(frozen=True)
class TspuConfig:
    dpid: int
    ports: TspuPorts
    registry_prefixes: tuple[IPNetwork, ...]
    #: Behaviour profile (a packaged name or a path); None: registry IP drops only.
    profile: str | None = None
    registry_file: Path | None = None
    subscriber_nets: tuple[IPNetwork, ...] = ()
    time_scale: float = 1.0
    #: root-namespace names of the switch ports (for nftables loss rules on their egress)
    subscriber_if: str = ""
    upstream_if: str = ""
    nft_table: str = ""
    control_socket: Path | None = None
    #: "closed": if the controller dies, flows not yet judged are not forwarded (OVS secure mode);
    #: "open": the switch falls back to forwarding everything (OVS standalone mode), a DPI bypass.
    fail_mode: str = "closed"
    #: entries added to the profile's named sets (scenario lists: SNI-I names, allowlists)
    profile_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: subscriber addresses whose traffic is not inspected (partial TSPU coverage, §1)
    bypass_hosts: tuple[str, ...] = ()
    #: a name for logs and reports (the ISP)
    name: str = "tspu"


@dataclass(frozen=True)
class OldFilterConfig:
    """An ISP's own older filter (controllers/oldfilter_box.py), a switch of its own."""

    dpid: int
    ports: TspuPorts
    settings: FilterSettings
    registry_file: Path | None = None
    #: a name for logs and reports (the ISP)
    name: str = "isp"


@dataclass(frozen=True)
class ControllerConfig:
    #: Every TSPU switch of the run (one per ISP); none: every switch is a learning switch.
    tspus: tuple[TspuConfig, ...]
    events_log: Path | None
    #: every ISP's old filter (tspu-behaviour.md §4), one switch each
    old_filters: tuple[OldFilterConfig, ...] = ()

    @property
    def tspu(self) -> TspuConfig | None:
        """The first TSPU (single-ISP runs have one)."""
        return self.tspus[0] if self.tspus else None

    def tspu_by_dpid(self, dpid: int) -> TspuConfig | None:
        return next((t for t in self.tspus if t.dpid == dpid), None)

    def controls(self, dpid: int) -> bool:
        """Whether a box of this controller (a TSPU or an old filter) drives the switch; the
        learning switch takes the others."""
        return self.tspu_by_dpid(dpid) is not None or any(f.dpid == dpid for f in self.old_filters)

    @classmethod
    def from_env(cls) -> ControllerConfig:
        path = os.environ.get(ENV_VAR)
        if not path:
            return cls(tspus=(), events_log=None)
        return cls.load(Path(path))

    @classmethod
    def load(cls, path: Path) -> ControllerConfig:
        """controller.json, validated by its contract (`tspulab.contracts.ControllerFile`): a
        missing or wrong field is an error naming the file and the field."""
        return cls.from_contract(ControllerFile.read(path))

    @classmethod
    def from_contract(cls, raw: ControllerFile) -> ControllerConfig:
        tspus = tuple(
            TspuConfig(
                dpid=t.dpid,
                ports=TspuPorts(subscriber=t.subscriber_port, upstream=t.upstream_port),
                registry_prefixes=tuple(ipaddress.ip_network(p) for p in t.registry_prefixes),
                profile=t.profile,
                registry_file=t.registry_file,
                subscriber_nets=tuple(ipaddress.ip_network(n) for n in t.subscriber_nets),
                time_scale=t.time_scale,
                subscriber_if=t.subscriber_if,
                upstream_if=t.upstream_if,
                nft_table=t.nft_table,
                control_socket=t.control_socket,
                fail_mode=t.fail_mode,
                profile_sets={k: tuple(v) for k, v in t.profile_sets.items()},
                bypass_hosts=tuple(t.bypass_hosts),
                name=t.name,
            )
            for t in raw.tspus
        )
        old_filters = tuple(
            OldFilterConfig(
                dpid=f.dpid,
                ports=TspuPorts(subscriber=f.subscriber_port, upstream=f.upstream_port),
                settings=FilterSettings(
                    blockpage=f.blockpage,
                    isp=f.name,
                    http=f.http,
                    https=f.https,
                    dns=f.dns,
                    mode=f.mode,
                    http_ports=tuple(f.http_ports),
                ),
                registry_file=f.registry_file,
                name=f.name,
            )
            for f in raw.old_filters
        )
        return cls(tspus=tspus, events_log=raw.events_log, old_filters=old_filters)


def write_registry(path: Path, registry: Registry) -> None:
    """The registry as the controller loads it: every address entry and domain rule, exactly."""
    data = {
        "addresses": [str(e.network) for e in registry.address_entries()],
        "domains": [[r.pattern, str(r.kind)] for r in registry.domain_rules()],
    }
    path.write_text(json.dumps(data))


def read_registry(path: Path) -> Registry:
    data = json.loads(path.read_text())
    registry = Registry()
    for entry in data.get("addresses", []):
        registry.add_address(entry, source=path.name)
    for pattern, kind in data.get("domains", []):
        registry.add_domain(pattern, MatchKind(kind), source=path.name)
    return registry
