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


@dataclass(frozen=True)
class ControllerConfig:
    #: None runs every switch, the TSPU position included, as a plain learning switch (baseline).
    tspu: TspuConfig | None
    events_log: Path | None

    @classmethod
    def from_env(cls) -> ControllerConfig:
        path = os.environ.get(ENV_VAR)
        if not path:
            return cls(tspu=None, events_log=None)
        return cls.load(Path(path))

    @classmethod
    def load(cls, path: Path) -> ControllerConfig:
        raw = json.loads(path.read_text())
        tspu = None
        if raw.get("tspu"):
            t = raw["tspu"]
            tspu = TspuConfig(
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
            )
        log = raw.get("events_log")
        return cls(tspu=tspu, events_log=Path(log) if log else None)

    @staticmethod
    def dump(path: Path, *, tspu: dict[str, Any] | None, events_log: Path) -> None:
        path.write_text(json.dumps({"tspu": tspu, "events_log": str(events_log)}, indent=1))


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
