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
from typing import Any

from tspulab.controllers.pipeline import IPNetwork, TspuPorts
from tspulab.dpi.domains import MatchKind
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
class ControllerConfig:
    #: Every TSPU switch of the run (one per ISP); none: every switch is a learning switch.
    tspus: tuple[TspuConfig, ...]
    events_log: Path | None

    @property
    def tspu(self) -> TspuConfig | None:
        """The first TSPU (single-ISP runs have one)."""
        return self.tspus[0] if self.tspus else None

    def tspu_by_dpid(self, dpid: int) -> TspuConfig | None:
        return next((t for t in self.tspus if t.dpid == dpid), None)

    @classmethod
    def from_env(cls) -> ControllerConfig:
        path = os.environ.get(ENV_VAR)
        if not path:
            return cls(tspus=(), events_log=None)
        return cls.load(Path(path))

    @classmethod
    def load(cls, path: Path) -> ControllerConfig:
        raw = json.loads(path.read_text())
        listed = raw.get("tspus") or ([raw["tspu"]] if raw.get("tspu") else [])
        tspus = []
        for t in listed:
            tspus.append(
                TspuConfig(
                    dpid=int(t["dpid"]),
                    ports=TspuPorts(
                        subscriber=int(t["subscriber_port"]), upstream=int(t["upstream_port"])
                    ),
                    registry_prefixes=tuple(
                        ipaddress.ip_network(p) for p in t.get("registry_prefixes", [])
                    ),
                    profile=t.get("profile"),
                    registry_file=Path(t["registry_file"]) if t.get("registry_file") else None,
                    subscriber_nets=tuple(
                        ipaddress.ip_network(n) for n in t.get("subscriber_nets", [])
                    ),
                    time_scale=float(t.get("time_scale", 1.0)),
                    subscriber_if=t.get("subscriber_if", ""),
                    upstream_if=t.get("upstream_if", ""),
                    nft_table=t.get("nft_table", ""),
                    control_socket=Path(t["control_socket"]) if t.get("control_socket") else None,
                    fail_mode=t.get("fail_mode", "closed"),
                    profile_sets={k: tuple(v) for k, v in t.get("profile_sets", {}).items()},
                    bypass_hosts=tuple(t.get("bypass_hosts", ())),
                    name=t.get("name", "tspu"),
                )
            )
        log = raw.get("events_log")
        return cls(tspus=tuple(tspus), events_log=Path(log) if log else None)

    @staticmethod
    def dump(
        path: Path,
        *,
        tspu: dict[str, Any] | None = None,
        tspus: list[dict[str, Any]] | None = None,
        events_log: Path,
    ) -> None:
        listed = tspus if tspus is not None else ([tspu] if tspu else [])
        path.write_text(json.dumps({"tspus": listed, "events_log": str(events_log)}, indent=1))


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
