"""Controller configuration handed over by the lab as a JSON file.

The lab writes `<run dir>/controller.json` and starts the launcher with its path; apps read it
in their constructor. Keeping it a file (not CLI flags) lets the record show exactly what the
controller was told.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tspulab.controllers.pipeline import IPNetwork, TspuPorts

ENV_VAR = "TSPULAB_CONTROLLER_CONFIG"


@dataclass(frozen=True)
class TspuConfig:
    dpid: int
    ports: TspuPorts
    registry_prefixes: tuple[IPNetwork, ...]


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
            )
        log = raw.get("events_log")
        return cls(tspu=tspu, events_log=Path(log) if log else None)

    @staticmethod
    def dump(path: Path, *, tspu: dict[str, object] | None, events_log: Path) -> None:
        path.write_text(json.dumps({"tspu": tspu, "events_log": str(events_log)}, indent=1))
