"""The lab of a campaign: several ISPs with their own TSPU, clouds, DNS, circumvention servers.

Single-ISP scenarios without a timeline keep using `LiveLab`; a scenario with `isps` or a
`timeline` runs here. Differences:
- one TSPU switch per ISP, each with its own profile, registry version (update delays) and nft
  table, all in one controller addressed by dpid over the control channel;
- every cloud's nginx serves every service, so moving a service (Telegram's rotation into AWS and
  Google Cloud) is a DNS change: dnsmasq reads a hosts file and re-reads it on SIGHUP;
- circumvention servers (SOCKS5 with microsocks) run in their clouds, resolving through the lab.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from tspulab.controllers.config import ControllerConfig, write_registry
from tspulab.controllers.control import send_command
from tspulab.dpi.registry import Registry
from tspulab.lab.network import Lab
from tspulab.lab.pki import RunCA
from tspulab.lab.record import RunRecord
from tspulab.lab.services import (
    Site,
    start_dnsmasq,
    start_logged,
    start_nginx,
    write_hosts_file,
    write_resolv_conf,
)
from tspulab.metrics.results import ResultWriter
from tspulab.scenario.build import build_registry
from tspulab.scenario.labrun import LabRun
from tspulab.scenario.live import make_run_dir, netem_available
from tspulab.scenario.model import Scenario
from tspulab.scenario.probes import ProbeResult, https_probe, ping_probe
from tspulab.scenario.tspu_config import control_socket_path
from tspulab.topologies.multi_isp import IspSpec, MultiIspSpec, MultiIspTopo, isp_net
from tspulab.topologies.single_isp import TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT, CloudSpec


class CampaignLab(LabRun):
    def __init__(self, scenario: Scenario, runs_dir: Path, *, log: Any = print) -> None:
        self.scenario = scenario
        self.log = log
        self.run_dir = make_run_dir(runs_dir, scenario.name)
        self.record = RunRecord(self.run_dir)
        self.isps = scenario.effective_isps()
        self.isp_index = {isp.name: i for i, isp in enumerate(self.isps, start=1)}
        hosts = scenario.subscriber_hosts()
        self.host_of: dict[str, str] = {}  # scenario subscriber name -> Mininet host
        self.isp_of_host: dict[str, str] = {}
        self.address_of_host: dict[str, str] = {}
        isp_specs = []
        for i, isp in enumerate(self.isps, start=1):
            spec = IspSpec(isp.name, isp.subscribers)
            isp_specs.append(spec)
            for n, name in enumerate(hosts[isp.name], start=1):
                self.host_of[name] = spec.host(i, n)
                self.isp_of_host[name] = isp.name
                self.address_of_host[name] = spec.subscriber_ip(i, n)
        self.cloud_hosts = {c.name: f"cl{j}" for j, c in enumerate(scenario.clouds, start=1)}
        clouds = tuple(
            CloudSpec(self.cloud_hosts[c.name], tuple(str(p) for p in c.prefixes), c.name)
            for c in scenario.clouds
        )
        self.spec = MultiIspSpec(
            isps=tuple(isp_specs),
            clouds=clouds,
            dns_address=str(scenario.dns.address),
        )
        self.addresses = {s.name: str(s.address) for s in scenario.services}
        self.registry = build_registry(scenario)
        self.speed = scenario.clock.speed if scenario.clock else 1.0
        self.meta: dict[str, Any] = {
            "name": scenario.name,
            "scenario": str(scenario.path),
            "started": time.time(),
            "clock": {
                "start": scenario.clock.start.isoformat()
                if scenario.clock and scenario.clock.start
                else None,
                "speed": self.speed,
            },
            "isps": [
                {
                    "name": isp.name,
                    "profile": isp.profile,
                    "coverage": isp.coverage,
                    "update_delay_s": isp.update_delay_s,
                    "subscribers": list(hosts[isp.name]),
                }
                for isp in self.isps
            ],
            "services": [
                {
                    "name": s.name,
                    "role": s.role,
                    "users": s.users,
                    "address": str(s.address),
                    "cloud": s.cloud,
                }
                for s in scenario.services
            ],
            "circumvention": [c.name for c in scenario.circumvention],
            "datapath": "userspace (netdev)",
            "netem": netem_available(),
            "cloud_hosts": self.cloud_hosts,
        }
        (self.run_dir / "run.json").write_text(json.dumps(self.meta, indent=1))
        config = self.run_dir / "controller.json"
        ControllerConfig.dump(
            config, tspus=self._tspu_configs(), events_log=self.run_dir / "controller-events.jsonl"
        )
        self.lab = Lab(self.run_dir, MultiIspTopo(spec=self.spec), config, self.record)
        self.writer = ResultWriter(self.run_dir / "results.jsonl")
        self.leftovers: list[str] = []
        self._dnsmasq: Any = None
        self.versions = 0

    def _tspu_configs(self) -> list[dict[str, Any]]:
        out = []
        for i, isp in enumerate(self.isps, start=1):
            registry_file = self.run_dir / f"registry-{isp.name}-0.json"
            write_registry(registry_file, self.registry)
            nft = (
                "tspulab_"
                + hashlib.blake2b(f"{self.run_dir}/{isp.name}".encode(), digest_size=5).hexdigest()
            )
            self.record.nft_table("netdev", nft)
            self.record.file(control_socket_path(self.run_dir))
            subs = [n for n, owner in self.isp_of_host.items() if owner == isp.name]
            uncovered = subs[: math.floor(len(subs) * (1 - isp.coverage) + 1e-9)]
            tspu = self.spec.tspu_switch(i)
            out.append(
                {
                    "name": isp.name,
                    "dpid": self.spec.tspu_dpid(i),
                    "subscriber_port": TSPU_SUBSCRIBER_PORT,
                    "upstream_port": TSPU_UPSTREAM_PORT,
                    "subscriber_if": f"{tspu}-eth{TSPU_SUBSCRIBER_PORT}",
                    "upstream_if": f"{tspu}-eth{TSPU_UPSTREAM_PORT}",
                    "registry_prefixes": [],
                    "registry_file": str(registry_file),
                    "profile": isp.profile,
                    "profile_sets": {k: list(v) for k, v in (isp.profile_sets or {}).items()},
                    "subscriber_nets": [str(isp_net(i))],
                    "time_scale": 1.0 / self.speed,
                    "nft_table": nft,
                    "control_socket": str(control_socket_path(self.run_dir)),
                    "fail_mode": isp.fail_mode,
                    "bypass_hosts": [self.address_of_host[n] for n in uncovered],
                }
            )
        return out

    # --- bring-up and teardown ---------------------------------------------------------------

    def start(self) -> None:
        self.log(f"run directory: {self.run_dir}")
        # Before the hosts exist: each Mininet host copies the mount namespace when it is made.
        self.resolv = write_resolv_conf(self.run_dir, str(self.scenario.dns.address))
        self.lab.start()
        assert self.lab.net is not None
        self.log(
            f"lab up in {sum(self.lab.timings.values()):.1f} s "
            f"({len(self.lab.net.hosts)} hosts, {len(self.isps)} ISPs)"
        )
        self.ca = RunCA(self.run_dir / "pki")
        sites = tuple(
            Site(s.name, tuple(s.domains), str(s.address)) for s in self.scenario.services
        )
        for host in self.cloud_hosts.values():
            start_nginx(self.lab.host(host), sites, self.ca, self.run_dir, self.record)
        dns = str(self.scenario.dns.address)
        self.hosts_file = self.run_dir / "dns-hosts"
        self._dnsmasq = start_dnsmasq(
            self.lab.host("dns1"),
            dns,
            self._dns_records(),
            self.run_dir,
            self.record,
            hosts_file=self.hosts_file,
        )
        for method in self.scenario.circumvention:
            if method.kind == "socks5" and method.cloud is not None:
                host = self.lab.host(self.cloud_hosts[method.cloud])
                argv = ["microsocks", "-i", str(method.address), "-p", str(method.port)]
                start_logged(
                    host,
                    argv,
                    self.run_dir / f"socks-{method.name}.log",
                    self.record,
                    f"microsocks {method.name}",
                )

    # --- acting on the running campaign -------------------------------------------------------

    def _dns_records(self) -> dict[str, str]:
        return {d: self.addresses[s.name] for s in self.scenario.services for d in s.domains}

    def move_service(self, service: str, address: str) -> None:
        """Point the service's names at a new address (every cloud serves every service)."""
        self.addresses[service] = address
        write_hosts_file(self.hosts_file, self._dns_records())
        os.kill(self._dnsmasq.pid, signal.SIGHUP)

    def push_registry(self, isp: str, registry: Registry) -> dict[str, Any]:
        self.versions += 1
        path = self.run_dir / f"registry-{isp}-{self.versions}.json"
        write_registry(path, registry)
        dpid = self.spec.tspu_dpid(self.isp_index[isp])
        reply: dict[str, Any] = send_command(
            control_socket_path(self.run_dir), {"cmd": "registry", "file": str(path), "dpid": dpid}
        )
        return reply

    def set_profile(self, isp: str, name: str) -> dict[str, Any]:
        dpid = self.spec.tspu_dpid(self.isp_index[isp])
        reply: dict[str, Any] = send_command(
            control_socket_path(self.run_dir), {"cmd": "profile", "name": name, "dpid": dpid}
        )
        return reply

    def probe(
        self,
        subscriber: str,
        service: str,
        *,
        method: str = "direct",
        timeout_s: float | None = None,
        round_no: int = 0,
        path: str = "/",
        range_bytes: int = 0,
        kind: str = "https",
    ) -> ProbeResult:
        spec = next(s for s in self.scenario.services if s.name == service)
        timeout = timeout_s if timeout_s is not None else self.scenario.probes.timeout_s
        if kind == "ping":
            return ping_probe(
                self.lab.host(self.host_of[subscriber]), subscriber=subscriber, service=service,
                role=spec.role, address=self.addresses[service], timeout_s=timeout,
                round_no=round_no,
            )  # fmt: skip
        socks = None
        if method != "direct":
            m = next(c for c in self.scenario.circumvention if c.name == method)
            socks = f"{m.address}:{m.port}" if m.kind == "socks5" else None
        return https_probe(
            self.lab.host(self.host_of[subscriber]),
            subscriber=subscriber,
            service=service,
            role=spec.role,
            domain=spec.domains[0],
            ca=self.ca.ca_path,
            resolv_conf=self.resolv,
            timeout_s=timeout_s if timeout_s is not None else self.scenario.probes.timeout_s,
            round_no=round_no,
            path=path,
            range_bytes=range_bytes,
            socks5=socks,
            scheme="http" if kind == "http" else "https",
        )
