"""A scenario's lab while it runs: servers up, probes on demand, registry pushes, clean stop.

`run_scenario` drives one of these from start to end; tests and timelines use it directly to act
in the middle of a run (push a new registry version, kill the controller, probe again).

    with LiveLab(scenario, runs_dir) as live:
        live.probe("sub1", "evernote")
        live.push_registry(new_registry)
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tspulab.controllers.config import ControllerConfig, write_registry
from tspulab.controllers.control import send_command
from tspulab.dpi.registry import Registry
from tspulab.lab.network import Lab
from tspulab.lab.pki import RunCA
from tspulab.lab.record import RunRecord
from tspulab.lab.services import start_dnsmasq, start_nginx, write_resolv_conf
from tspulab.metrics.results import ResultWriter
from tspulab.parity import CAPTURE_NAME
from tspulab.scenario.build import build_registry, plan_lab
from tspulab.scenario.labrun import LabRun
from tspulab.scenario.model import Scenario
from tspulab.scenario.probes import ProbeResult, https_probe
from tspulab.scenario.tspu_config import control_socket_path, tspu_controller_config
from tspulab.topologies.single_isp import TSPU_SUBSCRIBER_PORT, SingleIspTopo


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
        fail_mode: str = "closed",
        log: Any = print,
    ) -> None:
        self.scenario = scenario
        self.tspu = tspu
        self.capture = capture
        self.log = log
        self.run_dir = make_run_dir(runs_dir, scenario.name)
        self.record = RunRecord(self.run_dir)
        self.registry = build_registry(scenario)
        self.prefixes = self.registry.aggregated_prefixes()
        self.plan = plan_lab(
            scenario,
        )
        self.tspu_switch = self.plan.topology.tspu_switch
        self.meta: dict[str, Any] = {
            "scenario": str(scenario.path),
            "name": scenario.name,
            "started": time.time(),
            "tspu": tspu,
            "profile": scenario.profile,
            "fail_mode": fail_mode,
            "datapath": "userspace (netdev)",
            "netem": netem_available(),
            "registry_entries": self.registry.entry_count(),
            "registry_prefixes_aggregated": len(self.prefixes),
            "cloud_hosts": self.plan.cloud_hosts,
        }
        (self.run_dir / "run.json").write_text(json.dumps(self.meta, indent=1))
        config_path = self.run_dir / "controller.json"
        ControllerConfig.dump(
            config_path,
            tspu=tspu_controller_config(
                self.run_dir, self.record, scenario.profile, self.registry, self.prefixes,
                sets=scenario.profile_sets, fail_mode=fail_mode, tspu_switch=self.tspu_switch,
            )
            if tspu
            else None,
            events_log=self.run_dir / "controller-events.jsonl",
        )  # fmt: skip
        self.lab = Lab(
            self.run_dir, SingleIspTopo(spec=self.plan.topology), config_path, self.record
        )
        self.writer = ResultWriter(self.run_dir / "results.jsonl")
        self._tcpdump: subprocess.Popen[bytes] | None = None
        self.leftovers: list[str] = []
        self.registry_versions = 0

    # --- bring-up and teardown ---------------------------------------------------------------

    def start(self) -> None:
        self.log(f"run directory: {self.run_dir}")
        # Before the hosts exist: each Mininet host copies the mount namespace when it is made.
        self.resolv = write_resolv_conf(self.run_dir, str(self.scenario.dns.address))
        self.lab.start()
        assert self.lab.net is not None
        self.log(
            f"lab up in {sum(self.lab.timings.values()):.1f} s ({len(self.lab.net.hosts)} hosts)"
        )
        if self.capture:
            self._tcpdump = self._start_capture()
        self.ca = RunCA(self.run_dir / "pki")
        for host_name, sites in self.plan.sites.items():
            start_nginx(self.lab.host(host_name), sites, self.ca, self.run_dir, self.record)
        dns = str(self.scenario.dns.address)
        start_dnsmasq(self.lab.host("dns1"), dns, self.plan.dns_records, self.run_dir, self.record)

    def _before_teardown(self) -> None:
        if self._tcpdump is not None:
            self._stop_capture(self._tcpdump)
            self._tcpdump = None

    def _start_capture(self) -> subprocess.Popen[bytes]:
        """tcpdump on the TSPU switch's subscriber-side port (root namespace): what subscribers
        sent and what the TSPU let through to them, for `tspulab parity`."""
        log_path = self.run_dir / "tcpdump.log"
        proc = subprocess.Popen(
            ["tcpdump", "-i", f"{self.tspu_switch}-eth{TSPU_SUBSCRIBER_PORT}", "-U", "-s", "0",
             "-w", str(self.run_dir / CAPTURE_NAME)],
            stdout=subprocess.DEVNULL, stderr=log_path.open("ab"), start_new_session=True,
        )  # fmt: skip
        self.record.process(proc.pid, "tcpdump", group_leader=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "listening" not in log_path.read_text():
            time.sleep(0.05)
        return proc

    @staticmethod
    def _stop_capture(proc: subprocess.Popen[bytes]) -> None:
        time.sleep(0.2)  # let the last packets reach the file
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # --- acting on the running lab -------------------------------------------------------------

    def probe(
        self,
        subscriber: str,
        service_name: str,
        *,
        round_no: int = 0,
        path: str = "/",
        range_bytes: int = 0,
        timeout_s: float | None = None,
        record: bool = True,
    ) -> ProbeResult:
        service = next(s for s in self.scenario.services if s.name == service_name)
        result = https_probe(
            self.lab.host(subscriber),
            subscriber=subscriber,
            service=service.name,
            role=service.role,
            domain=service.domains[0],
            ca=self.ca.ca_path,
            resolv_conf=self.resolv,
            timeout_s=timeout_s if timeout_s is not None else self.scenario.probes.timeout_s,
            round_no=round_no,
            path=path,
            range_bytes=range_bytes,
        )
        if record:
            self.writer.write(result.to_json())
        return result

    def push_registry(self, registry: Registry) -> dict[str, Any]:
        """Send a new registry version to the controller; it applies the diff in the switch."""
        self.registry_versions += 1
        path = self.run_dir / f"registry-{self.registry_versions}.json"
        write_registry(path, registry)
        reply: dict[str, Any] = send_command(
            control_socket_path(self.run_dir), {"cmd": "registry", "file": str(path)}
        )
        self.registry = registry
        self.prefixes = registry.aggregated_prefixes()
        return reply

    def controller_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = send_command(control_socket_path(self.run_dir), {"cmd": "stats"})
        return stats
