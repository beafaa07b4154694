"""A scenario's lab while it runs: one or many ISPs, each with its own TSPU, clouds, DNS, servers.

One lab for every scenario: a scenario without `isps` is a campaign with one ISP (named "isp",
subscribers `sub1..subN`), run on the same topology (`topologies/multi_isp.py`), controller
configuration, servers, probes and report as a campaign of many. `run_scenario` drives one of
these from start to end; tests, benchmarks and timelines use it directly to act in the middle of a
run (push a registry version, switch a profile, kill the controller, probe again):

    with LiveLab(scenario, runs_dir) as live:        # inside a sandbox (run_in_sandbox)
        live.probe("sub1", "evernote")
        live.push_registry(new_registry)              # every ISP, or isp="rostelecom"

- one TSPU switch per ISP, each with its own profile, registry version (update delays) and nft
  table, all in one controller addressed by dpid over the control channel;
- every cloud's nginx serves every service, so moving a service (Telegram's rotation into AWS and
  Google Cloud) is a DNS change: dnsmasq reads a hosts file and re-reads it on SIGHUP;
- circumvention servers (real VPN, proxy and Tor tools, `tspulab.methods`) run in their clouds,
  resolving through the lab; a probe through a method uses the tool's own client.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

from tspulab.contracts import (
    CONTROLLER_FILE,
    EVENTS_FILE,
    RUN_FILE,
    ControllerFile,
    IspMeta,
    RunMeta,
    ServiceMeta,
    TspuSwitchConfig,
)
from tspulab.controllers.config import write_registry
from tspulab.controllers.control import send_command
from tspulab.dpi.registry import Registry
from tspulab.lab.faults import LabFaults
from tspulab.lab.linkshape import decide, netem_supported, shape_links
from tspulab.lab.network import Lab
from tspulab.lab.ovs import choose_datapath
from tspulab.lab.pki import RunCA
from tspulab.lab.record import RunRecord
from tspulab.lab.services import (
    site_marker,
    start_dnsmasq,
    start_nginx,
    write_hosts_file,
    write_resolv_conf,
)
from tspulab.methods.lab import LabMethods
from tspulab.metrics.results import ResultWriter
from tspulab.parity import capture_name
from tspulab.scenario.build import build_registry, plan_lab
from tspulab.scenario.dnsprobe import dns_probe
from tspulab.scenario.labrun import LabRun
from tspulab.scenario.model import Scenario
from tspulab.scenario.oldfilter_lab import filter_configs, start_blockpages
from tspulab.scenario.probes import ProbeResult, https_probe, ping_probe
from tspulab.scenario.tspu_config import control_socket_path
from tspulab.topologies.multi_isp import (
    TSPU_SUBSCRIBER_PORT,
    TSPU_UPSTREAM_PORT,
    MultiIspTopo,
    isp_net,
)


def make_run_dir(runs_dir: Path, name: str) -> Path:
    import datetime as dt

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / f"{name}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_dir / f"{name}-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir.resolve()


def netem_available() -> bool:
    return Path("/sys/module/sch_netem").exists()


class LiveLab(LabRun):
    """Everything of one run between bring-up and teardown."""

    def __init__(
        self,
        scenario: Scenario,
        runs_dir: Path,
        *,
        tspu: bool = True,
        capture: bool = False,
        fail_mode: Literal["closed", "open"] | None = None,
        no_delays: bool = False,
        log: Any = print,
    ) -> None:
        """`tspu=False` puts a learning switch where each TSPU is (the baseline of benchmarks);
        `fail_mode` overrides every ISP's; `capture` records each TSPU's subscriber-side port;
        `no_delays` runs a scenario with `links:` without its delays where netem is missing
        (without it such a run is refused here, before anything is made)."""
        decide(scenario.links, no_delays=no_delays, netem=netem_supported(), scenario=scenario.name)
        self.no_delays = no_delays
        self.scenario = scenario
        self.tspu = tspu
        self.capture = capture
        self.log = log
        self.run_dir = make_run_dir(runs_dir, scenario.name)
        self.record = RunRecord(self.run_dir)
        self.isps = scenario.effective_isps()
        self.isp_index = {isp.name: i for i, isp in enumerate(self.isps, start=1)}
        self.fail_modes: dict[str, Literal["closed", "open"]] = {
            isp.name: fail_mode or isp.fail_mode for isp in self.isps
        }
        hosts = scenario.subscriber_hosts()
        self.plan = plan_lab(scenario)
        self.spec = self.plan.topology
        self.host_of = self.plan.host_of
        self.isp_of_host = self.plan.isp_of_host
        self.address_of_host = self.plan.address_of_host
        self.cloud_hosts = self.plan.cloud_hosts
        self.addresses = {s.name: str(s.address) for s in scenario.services}
        self.registry = build_registry(scenario)
        self.speed = scenario.clock.speed if scenario.clock else 1.0
        self.meta = self._meta(hosts)
        self.meta.write(self.run_dir / RUN_FILE)
        config = self.run_dir / CONTROLLER_FILE
        ControllerFile(
            tspus=self._tspu_configs() if tspu else [],
            events_log=self.run_dir / EVENTS_FILE,
            # each ISP's own older filter beside its TSPU (tspulab.scenario.oldfilter_lab)
            old_filters=filter_configs(scenario, self.run_dir, self.registry) if tspu else [],
        ).write(config)
        self.lab = Lab(self.run_dir, MultiIspTopo(spec=self.spec), config, self.record)
        self.writer = ResultWriter(self.run_dir / "results.jsonl")
        # Circumvention servers start in their clouds once the lab is up; a subscriber gets a
        # method's client the first time it probes through it (tspulab.methods, real tools).
        self.methods = LabMethods(
            scenario.circumvention, self.run_dir, self.record, clients=len(self.host_of), log=log,
            scenario_path=scenario.path,
        )  # fmt: skip
        self.leftovers: list[str] = []
        self._dnsmasq: Any = None
        #: cloud -> its nginx process; ISP -> the profile the timeline set last (a restarted
        #: controller is told these); the faults that can be injected (tspulab.lab.faults)
        self.nginx: dict[str, Any] = {}
        self.profiles: dict[str, str] = {}
        self.faults = LabFaults(self)
        self._captures: list[subprocess.Popen[bytes]] = []
        self.versions = 0

    def _meta(self, hosts: dict[str, tuple[str, ...]]) -> RunMeta:
        s = self.scenario
        return RunMeta(
            name=s.name,
            scenario=str(s.path),
            started=time.time(),
            clock_start=s.clock.start.isoformat() if s.clock and s.clock.start else None,
            clock_speed=self.speed,
            tspu=self.tspu,
            capture=self.capture,
            isps=[
                IspMeta(
                    name=isp.name,
                    profile=isp.profile if self.tspu else None,
                    coverage=isp.coverage,
                    update_delay_s=isp.update_delay_s,
                    fail_mode=self.fail_modes[isp.name],
                    subscribers=list(hosts[isp.name]),
                    tspu_switch=self.spec.tspu_switch(i),
                    weights=isp.host_weights(tuple(hosts[isp.name])),
                )
                for i, isp in enumerate(self.isps, start=1)
            ],
            services=[
                ServiceMeta(
                    name=x.name,
                    role=x.role,
                    users=x.users,
                    address=str(x.address),
                    cloud=x.cloud,
                    population=x.population,
                )
                for x in s.services
            ],
            circumvention=[c.name for c in s.circumvention],
            probes=s.probes.model_dump(mode="json", by_alias=True),
            datapath="kernel (system)" if choose_datapath() == "kernel" else "userspace (netdev)",
            netem=netem_supported(),
            cloud_hosts=self.cloud_hosts,
            expect=[e.model_dump(by_alias=True, mode="json") for e in s.expect],
            populations=[p.model_dump(mode="json") for p in s.populations],
        )

    def _tspu_configs(self) -> list[TspuSwitchConfig]:
        out = []
        socket = control_socket_path(self.run_dir)
        self.record.file(socket)
        for i, isp in enumerate(self.isps, start=1):
            registry_file = self.run_dir / f"registry-{isp.name}-0.json"
            write_registry(registry_file, self.registry)
            nft = "tspulab_" + hashlib.blake2b(isp.name.encode(), digest_size=5).hexdigest()
            self.record.nft_table("netdev", nft)
            subs = [n for n, owner in self.isp_of_host.items() if owner == isp.name]
            uncovered = isp.uncovered_hosts(tuple(subs))
            tspu = self.spec.tspu_switch(i)
            out.append(
                TspuSwitchConfig(
                    name=isp.name,
                    dpid=self.spec.tspu_dpid(i),
                    subscriber_port=TSPU_SUBSCRIBER_PORT,
                    upstream_port=TSPU_UPSTREAM_PORT,
                    subscriber_if=f"{tspu}-eth{TSPU_SUBSCRIBER_PORT}",
                    upstream_if=f"{tspu}-eth{TSPU_UPSTREAM_PORT}",
                    registry_file=registry_file,
                    profile=isp.profile,
                    profile_sets={k: list(v) for k, v in (isp.profile_sets or {}).items()},
                    subscriber_nets=[str(isp_net(i))],
                    time_scale=1.0 / self.speed,
                    nft_table=nft,
                    control_socket=socket,
                    fail_mode=self.fail_modes[isp.name],
                    bypass_hosts=[self.address_of_host[n] for n in uncovered],
                )
            )
        return out

    # --- bring-up and teardown ---------------------------------------------------------------

    def start(self) -> None:
        self.log(f"run directory: {self.run_dir}")
        # Before the hosts exist: each Mininet host copies the mount namespace when it is made.
        self.resolv = write_resolv_conf(
            self.run_dir, str(self.scenario.dns.address), self.scenario.probes.timeout_s
        )
        self.lab.start()
        assert self.lab.net is not None
        delays = shape_links(
            self.lab.net, self.scenario, self.spec, self.run_dir, no_delays=self.no_delays
        )
        self.meta = self.meta.model_copy(update={"delays": delays})
        self.meta.write(self.run_dir / RUN_FILE)
        self.log(
            f"lab up in {sum(self.lab.timings.values()):.1f} s "
            f"({len(self.lab.net.hosts)} hosts, {len(self.isps)} ISP(s))"
        )
        if self.capture:
            self._captures = [self._start_capture(isp.name) for isp in self.isps]
        self.ca = RunCA(self.run_dir / "pki")
        for cloud, host in self.cloud_hosts.items():
            self.nginx[cloud] = start_nginx(
                self.lab.host(host), self.plan.sites, self.ca, self.run_dir, self.record
            )
        self.hosts_file = self.run_dir / "dns-hosts"
        self._dnsmasq = start_dnsmasq(
            self.lab.host("dns1"),
            str(self.scenario.dns.address),
            self._dns_records(),
            self.run_dir,
            self.record,
            hosts_file=self.hosts_file,
        )
        start_blockpages(self.lab, self.scenario, self.run_dir, self.record)
        self.methods.start_servers(
            lambda cloud: self.host(cloud),
            lambda cloud: [str(p) for p in self.scenario.cloud(cloud).prefixes],
        )

    def _before_teardown(self) -> None:
        # A dead ovs-vswitchd would hang Mininet's teardown (ovs-vsctl waits for it); a full
        # disk would keep the last results and the report from being written.
        self.faults.before_teardown()
        self.methods.stop()
        for proc in self._captures:
            time.sleep(0.2)  # let the last packets reach the file
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._captures = []

    def _start_capture(self, isp: str) -> subprocess.Popen[bytes]:
        """tcpdump on an ISP's TSPU subscriber-side port: what subscribers sent and what the TSPU
        let through to them, for `tspulab parity`."""
        port = f"{self.tspu_switch_of(isp)}-eth{TSPU_SUBSCRIBER_PORT}"
        log_path = self.run_dir / f"tcpdump-{isp}.log"
        proc = subprocess.Popen(
            ["tcpdump", "-i", port, "-U", "-s", "0", "-w", str(self.run_dir / capture_name(isp))],
            stdout=subprocess.DEVNULL, stderr=log_path.open("ab"), start_new_session=True,
        )  # fmt: skip
        self.record.process(proc.pid, f"tcpdump {isp}", group_leader=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "listening" not in log_path.read_text():
            time.sleep(0.05)
        return proc

    # --- names ----------------------------------------------------------------------------------

    def host(self, name: str) -> Any:
        """A Mininet node by scenario name (a subscriber such as `sub1`, a cloud such as `aws`),
        or by its Mininet name (`r1`, `dns1`)."""
        if name in self.host_of:
            return self.lab.host(self.host_of[name])
        if name in self.cloud_hosts:
            return self.lab.host(self.cloud_hosts[name])
        return self.lab.host(name)

    def tspu_switch_of(self, isp: str) -> str:
        return str(self.spec.tspu_switch(self.isp_index[isp]))

    @property
    def tspu_switch(self) -> str:
        """The first ISP's TSPU switch (the only one of a single-ISP scenario)."""
        return self.tspu_switch_of(self.isps[0].name)

    @property
    def subscribers(self) -> tuple[str, ...]:
        return tuple(self.host_of)

    # --- acting on the running lab -------------------------------------------------------------

    def _dns_records(self) -> dict[str, str]:
        return {d: self.addresses[s.name] for s in self.scenario.services for d in s.domains}

    def move_service(self, service: str, address: str) -> None:
        """Point the service's names at a new address (every cloud serves every service)."""
        self.addresses[service] = address
        write_hosts_file(self.hosts_file, self._dns_records())
        os.kill(self._dnsmasq.pid, signal.SIGHUP)

    def push_registry(self, registry: Registry, isp: str | None = None) -> dict[str, Any]:
        """Send a new registry version to one ISP's TSPU (every ISP's by default); the
        controller applies the diff in the switch. Returns the (last) controller reply."""
        reply: dict[str, Any] = {}
        for target in [isp] if isp is not None else [i.name for i in self.isps]:
            self.versions += 1
            path = self.run_dir / f"registry-{target}-{self.versions}.json"
            write_registry(path, registry)
            dpid = self.spec.tspu_dpid(self.isp_index[target])
            reply = send_command(
                control_socket_path(self.run_dir),
                {"cmd": "registry", "file": str(path), "dpid": dpid},
            )
        if isp is None:
            self.registry = registry
        return reply

    def set_profile(self, name: str, isp: str | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = {}
        for target in [isp] if isp is not None else [i.name for i in self.isps]:
            dpid = self.spec.tspu_dpid(self.isp_index[target])
            self.profiles[target] = name
            reply = send_command(
                control_socket_path(self.run_dir), {"cmd": "profile", "name": name, "dpid": dpid}
            )
        return reply

    def controller_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = send_command(control_socket_path(self.run_dir), {"cmd": "stats"})
        return stats

    def probe(
        self,
        subscriber: str,
        service: str,
        *,
        method: str = "direct",
        kind: str = "https",
        timeout_s: float | None = None,
        round_no: int = 0,
        path: str = "/",
        range_bytes: int = 0,
        record: bool = True,
        stamp: dict[str, Any] | None = None,
    ) -> ProbeResult:
        """Probe `service` from a subscriber, directly or through a circumvention method; with
        `record`, the result goes to results.jsonl at once, with its ISP, method and `stamp`."""
        spec = self.scenario.service(service)
        timeout = timeout_s if timeout_s is not None else self.scenario.probes.timeout_s
        host = self.host(subscriber)
        if kind == "dns":
            result = dns_probe(
                host, subscriber=subscriber, service=service, role=spec.role,
                domain=spec.domains[0], resolver=str(self.scenario.dns.address),
                expected=self.addresses[service], timeout_s=timeout, round_no=round_no,
            )  # fmt: skip
        elif kind == "ping":
            result = ping_probe(
                host, subscriber=subscriber, service=service, role=spec.role,
                address=self.addresses[service], timeout_s=timeout, round_no=round_no,
            )  # fmt: skip
        elif method != "direct":
            result = self._probe_through(
                method, host, subscriber, spec, kind, timeout, round_no, path, range_bytes
            )
        else:
            result = https_probe(
                host,
                subscriber=subscriber,
                service=service,
                role=spec.role,
                domain=spec.domains[0],
                ca=self.ca.ca_path,
                timeout_s=timeout,
                round_no=round_no,
                path=path,
                range_bytes=range_bytes,
                scheme="http" if kind == "http" else "https",
            )
        # A part of the lab that is down now (a fault, injected or not) is named on the result.
        down = self.faults.reasons(self._cloud_of(self.addresses[service]))
        if down:
            result = dataclasses.replace(result, fault="; ".join(down))
        if record:
            self.writer.write(
                {
                    **result.to_json(),
                    "isp": self.isp_of_host[subscriber],
                    "method": method,
                    **(stamp or {}),
                }
            )
        return result

    def _cloud_of(self, address: str) -> str | None:
        """The cloud whose prefixes hold `address` (where its service lives now)."""
        ip = ipaddress.ip_address(address)
        return next(
            (c.name for c in self.scenario.clouds if any(ip in p for p in c.prefixes)), None
        )

    def _probe_through(
        self,
        method: str,
        host: Any,
        subscriber: str,
        spec: Any,
        kind: str,
        timeout_s: float,
        round_no: int,
        path: str,
        range_bytes: int,
    ) -> ProbeResult:
        """A fetch through a circumvention method's own client (its proxy or tunnel)."""
        url = f"{'http' if kind == 'http' else 'https'}://{spec.domains[0]}{path}"
        got = self.methods.probe(
            method, host, url, ca=self.ca.ca_path, timeout_s=timeout_s,
            expect_bytes=range_bytes or None,
            extra_curl=["-r", f"0-{range_bytes - 1}"] if range_bytes else None,
            # the page must name the service: the right server answered, not a proxy's error page
            expect_text=None if path != "/" else site_marker(spec.name),
        )  # fmt: skip
        return ProbeResult(
            kind=kind, subscriber=subscriber, service=spec.name, role=spec.role, target=url,
            round=round_no, ok=got.ok, outcome=got.outcome, started=got.started,
            curl_exit=got.curl_exit, http_code=got.http_code,
            time_starttransfer_s=got.ttfb_s, time_total_s=got.total_s,
            size_download=got.size_bytes,
            speed_download_bps=got.goodput_bps / 8 if got.goodput_bps else None,
            extra={"access": got.access, "stderr": got.stderr[-300:]},
        )  # fmt: skip
