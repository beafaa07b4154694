"""The ISPs' own older filters in a running lab: their switches' configuration, their lists, their
block pages.

`LiveLab` calls these; the filter itself is `tspulab.dpi.oldfilter` (decisions) and
`controllers/oldfilter_box.py` (its switch), the scenario keys `tspulab.scenario.oldfilter_config`.

- Each filter's list is written to `<run dir>/oldfilter-<isp>-<version>.json` (the format of the
  TSPU's registry files) and pushed over the control channel by dpid, like a TSPU's.
- Its list is a copy of the registry the TSPUs get (`share` of its domain rules, a stable hash
  picking which; §2.1) following each published change `lag` late, or its own fixed list.
- Each block page host runs an nginx that answers every request on port 80 with the block page
  (the body names the ISP and carries `BLOCKPAGE_MARKER`, so a probe that lands there knows it);
  like many ISPs' block pages it has no HTTPS, so an HTTPS client sent there by a tampered DNS
  answer finds the port closed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tspulab.contracts import OldFilterSwitchConfig
from tspulab.controllers.config import write_registry
from tspulab.controllers.control import send_command
from tspulab.dpi.oldfilter import BLOCKPAGE_MARKER, partial_copy
from tspulab.dpi.registry import Registry
from tspulab.lab.record import RunRecord
from tspulab.lab.services import ServiceError, nginx_head, start_logged, wait_until_listening
from tspulab.scenario.build import registry_from_sources
from tspulab.scenario.campaign import Isp
from tspulab.scenario.model import Scenario
from tspulab.scenario.oldfilter_config import default_blockpage
from tspulab.scenario.tspu_config import control_socket_path
from tspulab.topologies.oldfilter import (
    OLD_FILTER_SUBSCRIBER_PORT,
    OLD_FILTER_UPSTREAM_PORT,
    blockpage_host,
    old_filter_dpid,
)


def filtering_isps(scenario: Scenario) -> list[tuple[int, Isp]]:
    """(topology index, ISP) of every ISP with an old filter."""
    return [
        (i, isp)
        for i, isp in enumerate(scenario.effective_isps(), start=1)
        if isp.old_filter is not None
    ]


def blockpage_of(i: int, isp: Isp) -> str:
    assert isp.old_filter is not None
    return str(isp.old_filter.blockpage or default_blockpage(i))


def filter_registry(scenario: Scenario, isp: Isp, published: Registry) -> Registry:
    """The filter's list: its own sources (domain rules only), or its share of `published`."""
    flt = isp.old_filter
    assert flt is not None
    if flt.registry is not None:
        own = registry_from_sources(scenario, flt.registry, f"isps[{isp.name}].old_filter.registry")
        return partial_copy(own, 1.0)
    return partial_copy(published, flt.share)


def write_filter_registry(run_dir: Path, isp: str, version: int, registry: Registry) -> Path:
    path = run_dir / f"oldfilter-{isp}-{version}.json"
    write_registry(path, registry)
    return path


def filter_configs(
    scenario: Scenario, run_dir: Path, published: Registry
) -> list[OldFilterSwitchConfig]:
    """controller.json's `old_filters`: one per ISP with a filter, with its first list."""
    out = []
    for i, isp in filtering_isps(scenario):
        flt = isp.old_filter
        assert flt is not None
        registry = filter_registry(scenario, isp, published)
        out.append(
            OldFilterSwitchConfig(
                name=isp.name,
                dpid=old_filter_dpid(i),
                subscriber_port=OLD_FILTER_SUBSCRIBER_PORT,
                upstream_port=OLD_FILTER_UPSTREAM_PORT,
                registry_file=write_filter_registry(run_dir, isp.name, 0, registry),
                blockpage=blockpage_of(i, isp),
                http=flt.http,
                https=flt.https,
                dns=flt.dns,
                mode=flt.mode,
            )
        )
    return out


def push_filter_registry(
    run_dir: Path, scenario: Scenario, isp_name: str, version: int, registry: Registry
) -> dict[str, Any]:
    """Send ISP `isp_name`'s filter a new list (a copy of `registry`, the published one)."""
    index = {isp.name: (i, isp) for i, isp in filtering_isps(scenario)}
    i, isp = index[isp_name]
    own = filter_registry(scenario, isp, registry)
    path = write_filter_registry(run_dir, isp_name, version, own)
    reply: dict[str, Any] = send_command(
        control_socket_path(run_dir),
        {"cmd": "registry", "file": str(path), "dpid": old_filter_dpid(i)},
    )
    return {**reply, "domains": own.domain_count()}


def _blockpage_conf(directory: Path, isp: str) -> str:
    body = f"{BLOCKPAGE_MARKER} {isp}: access to this resource is restricted"
    return f"""{nginx_head(directory, f"for the block page of ISP {isp}", connections=256)}
    server {{
        listen 80 default_server;
        location / {{ return 200 "{body}\\n"; }}
    }}
}}
"""


def start_blockpage(host: Any, isp: str, run_dir: Path, record: RunRecord) -> Any:
    """nginx on the block page host, answering every request on port 80 with the page."""
    directory = run_dir / "services" / host.name
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(_blockpage_conf(directory, isp))
    check = subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServiceError(f"nginx config {conf} rejected: {check.stderr.strip()}")
    proc = start_logged(
        host, ["nginx", "-c", str(conf)], directory / "nginx.out", record, f"nginx {host.name}"
    )
    if wait_until_listening(host, 80):
        return proc
    raise ServiceError(f"the block page on {host.name} is not listening; see {directory}")


def start_blockpages(lab: Any, scenario: Scenario, run_dir: Path, record: RunRecord) -> None:
    for i, isp in filtering_isps(scenario):
        start_blockpage(lab.host(blockpage_host(i)), isp.name, run_dir, record)
