"""What the TSPU controller app of a run is told (controller.json's `tspu` section)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tspulab.controllers.config import write_registry
from tspulab.controllers.pipeline import IPNetwork
from tspulab.dpi.registry import Registry
from tspulab.lab.record import RunRecord
from tspulab.topologies.single_isp import (
    ISP_NET,
    TSPU_DPID,
    TSPU_SUBSCRIBER_PORT,
    TSPU_UPSTREAM_PORT,
)


def control_socket_path(run_dir: Path) -> Path:
    """The controller's control socket: a short path (AF_UNIX allows 108 bytes, and run
    directories under pytest's temporary folders are longer), named after the run directory."""
    digest = hashlib.blake2b(str(run_dir).encode(), digest_size=6).hexdigest()
    return Path(tempfile.gettempdir()) / f"tspulab-{digest}.sock"


def tspu_controller_config(
    run_dir: Path,
    record: RunRecord,
    profile: str,
    registry: Registry,
    prefixes: list[IPNetwork],
    *,
    time_scale: float = 1.0,
    fail_mode: str = "closed",
    sets: Mapping[str, Sequence[str]] | None = None,
    tspu_switch: str = "tspu1",
) -> dict[str, Any]:
    """What the TSPU app is told: ports and their sides, profile, registry, control channel."""
    registry_file = run_dir / "registry.json"
    write_registry(registry_file, registry)
    nft_table = "tspulab_" + hashlib.blake2b(str(run_dir).encode(), digest_size=5).hexdigest()
    record.nft_table("netdev", nft_table)
    record.file(control_socket_path(run_dir))
    return {
        "dpid": TSPU_DPID,
        "subscriber_port": TSPU_SUBSCRIBER_PORT,
        "upstream_port": TSPU_UPSTREAM_PORT,
        "subscriber_if": f"{tspu_switch}-eth{TSPU_SUBSCRIBER_PORT}",
        "upstream_if": f"{tspu_switch}-eth{TSPU_UPSTREAM_PORT}",
        "registry_prefixes": [str(p) for p in prefixes],
        "registry_file": str(registry_file),
        "profile": profile,
        "subscriber_nets": [str(ISP_NET)],
        "time_scale": time_scale,
        "nft_table": nft_table,
        "control_socket": str(control_socket_path(run_dir)),
        "fail_mode": fail_mode,
        "profile_sets": {name: list(entries) for name, entries in (sets or {}).items()},
    }
