"""Breaking and repairing parts of a running lab, and saying which parts are broken now.

What the scenario's `faults:` (tspulab.scenario.faults) and the resilience tests do to a live lab:
kill the os-ken controller, ovs-vswitchd, a cloud's nginx or the resolver with SIGKILL (as the
kernel's OOM killer or a crash would: no clean shutdown), fill the run directory's file system,
and start each again the way bring-up did, so the run goes on. `reasons()` names every part that
is down at this moment, found from the processes themselves, not from what was injected, so a
part that died on its own is named too; a probe that fails while one is down carries the reason
("controller down", "service nginx on cloud aws (host c2) not running") instead of only a timeout.

Works on a `LiveLab` (tspulab.scenario.live), given duck-typed: this layer does not import the
scenario layer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tspulab.contracts import CONTROLLER_FILE, ControllerFile, EventKind
from tspulab.lab.record import process_alive
from tspulab.lab.services import start_dnsmasq, start_nginx
from tspulab.lab.timescale import scaled
from tspulab.metrics.results import read_results

FILL_NAME = "fault-fill-disk.bin"
#: fill-disk refuses a file system with more room than this (a user's real disk): it is meant for
#: a runs directory on a small file system (a tmpfs), and never fills a machine's disk by mistake.
FILL_MAX_ENV = "TSPULAB_FILL_DISK_MAX_MB"
FILL_MAX_MB_DEFAULT = 1024
#: Below this much free space the run directory counts as full (a results line no longer fits).
FULL_BELOW_BYTES = 64 * 1024


class FaultError(RuntimeError):
    """A fault that cannot be injected or repaired; the message says why."""


def _kill_group(proc: Any, what: str) -> int:
    """SIGKILL a process started as a group leader, with its group (nginx's workers)."""
    if proc is None or proc.poll() is not None:
        raise FaultError(f"{what} is not running")
    pid = int(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired as err:
        raise FaultError(f"{what} (pid {pid}) still running 10 s after SIGKILL") from err
    return pid


def _exit_words(proc: Any) -> str:
    code = proc.returncode if proc is not None else None
    if code is None:
        return "never started"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with {code}"


def latest_registry_file(run_dir: Path, isp: str, prefix: str = "registry") -> Path | None:
    """The newest registry version written for an ISP (`registry-<isp>-<n>.json`, highest n):
    what the ISP's TSPU should hold, whether or not a controller was up to take it; with
    `prefix="oldfilter"`, the newest list of the ISP's old filter."""
    pattern = re.compile(rf"{prefix}-{re.escape(isp)}-(\d+)\.json")
    found = [
        (int(m.group(1)), p)
        for p in run_dir.glob(f"{prefix}-*.json")
        if (m := pattern.fullmatch(p.name))
    ]
    return max(found)[1] if found else None


class LabFaults:
    """Fault injection on one running lab, and the list of its parts that are down."""

    def __init__(self, live: Any) -> None:
        self.live = live
        self.filler: Path | None = None
        self.teardown_notes: list[str] = []

    # --- the controller -------------------------------------------------------------------

    def kill_controller(self) -> str:
        pid = _kill_group(self.live.lab.controller.proc, "the controller")
        return f"os-ken controller (pid {pid}) killed with SIGKILL"

    def restart_controller(self, timeout_s: float = 45.0) -> str:
        """Start the controller again on the same port, told the run's current state (the latest
        registry version and profile of each ISP), and wait until every switch is back."""
        controller = self.live.lab.controller
        if controller.proc is not None and controller.proc.poll() is None:
            raise FaultError("the controller is running")
        path = self.live.run_dir / CONTROLLER_FILE
        config = ControllerFile.read(path)
        profiles: dict[str, str] = getattr(self.live, "profiles", {})
        tspus = [
            t.model_copy(
                update={
                    "registry_file": latest_registry_file(self.live.run_dir, t.name)
                    or t.registry_file,
                    "profile": profiles.get(t.name, t.profile),
                }
            )
            for t in config.tspus
        ]
        # the ISPs' old filters too, each with the newest list it was sent
        old_filters = [
            f.model_copy(
                update={
                    "registry_file": latest_registry_file(self.live.run_dir, f.name, "oldfilter")
                    or f.registry_file
                }
            )
            for f in config.old_filters
        ]
        config.model_copy(update={"tspus": tspus, "old_filters": old_filters}).write(path)
        before = self._switch_ups()
        started = time.monotonic()
        controller.start()
        if self.ovs_down():  # no switch to come back until ovs-vswitchd does
            return (
                f"controller restarted (pid {controller.proc.pid}); no switch connects while "
                "ovs-vswitchd is down"
            )
        back = self._wait_switches_back(before, timeout_s)
        return (
            f"controller restarted (pid {controller.proc.pid}); {back} in "
            f"{time.monotonic() - started:.2f} s"
        )

    def _events(self) -> list[dict[str, Any]]:
        path = ControllerFile.read(self.live.run_dir / CONTROLLER_FILE).events_log
        return read_results(path) if path else []

    def _switch_ups(self) -> tuple[dict[int, int], int]:
        ups: dict[int, int] = {}
        installed = 0
        for event in self._events():
            if event.get("event") == EventKind.SWITCH_UP:
                ups[event["dpid"]] = ups.get(event["dpid"], 0) + 1
            elif event.get("event") == EventKind.TSPU_RULES_INSTALLED:
                installed += 1
        return ups, installed

    def _wait_switches_back(self, before: tuple[dict[int, int], int], timeout_s: float) -> str:
        """Until every switch has connected again and each TSPU has its rules once more, as the
        controller's event log says; on a full disk that log cannot grow, so then until Open
        vSwitch's database says every switch is connected. Returns which of the two it was."""
        dpids = {int(sw.dpid, 16) for sw in self.live.lab.net.switches}
        tspus = len(ControllerFile.read(self.live.run_dir / CONTROLLER_FILE).tspus)
        deadline = time.monotonic() + scaled(timeout_s)
        polls = 0
        while time.monotonic() < deadline:
            ups, installed = self._switch_ups()
            back = {d for d in dpids if ups.get(d, 0) > before[0].get(d, 0)}
            if back == dpids and installed >= before[1] + tspus:
                return "every switch back with its rules"
            polls += 1
            if polls % 10 == 0 and self.disk_free() < FULL_BELOW_BYTES and self._ovsdb_connected():
                return "every switch connected (Open vSwitch's database: the disk is full)"
            time.sleep(0.05)
        raise FaultError(
            f"switches not back with the controller within {timeout_s:g} s "
            f"(see {self.live.lab.controller.log_path})"
        )

    def _ovsdb_connected(self) -> bool:
        """Every controller record of Open vSwitch's database says it is connected."""
        got = subprocess.run(
            ["ovs-vsctl", "--timeout=2", "--format=csv", "--no-headings",
             "--columns=is_connected", "list", "controller"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        states = got.stdout.split()
        return got.returncode == 0 and bool(states) and all(s == "true" for s in states)

    # --- Open vSwitch -----------------------------------------------------------------------

    def kill_ovs(self) -> str:
        pid = self.live.lab.ovs.pids.get("ovs-vswitchd")
        if pid is None or not process_alive(pid):
            raise FaultError("ovs-vswitchd is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"ovs-vswitchd (pid {pid}) killed with SIGKILL: every switch stops forwarding"

    def ovs_down(self) -> bool:
        pid = self.live.lab.ovs.pids.get("ovs-vswitchd")
        return pid is not None and not process_alive(pid)

    def _start_vswitchd(self) -> str:
        ovs = self.live.lab.ovs
        d = ovs.directory
        subprocess.run(
            [
                "ovs-vswitchd", f"unix:{d / 'db.sock'}",
                f"--pidfile={d / 'ovs-vswitchd.pid'}", f"--log-file={d / 'ovs-vswitchd.log'}",
                "--detach", "--no-chdir",
            ],
            check=True, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        pid = int((d / "ovs-vswitchd.pid").read_text().strip())
        ovs.pids["ovs-vswitchd"] = pid
        self.live.record.process(pid, "ovs-vswitchd", group_leader=True)
        return f"ovs-vswitchd restarted (pid {pid})"

    def restart_ovs(self, timeout_s: float = 45.0) -> str:
        """ovs-vswitchd again on the same database: the bridges and ports come back from it, the
        switches reconnect to the controller, which installs their rules again."""
        if not self.ovs_down():
            raise FaultError("ovs-vswitchd is running")
        before = self._switch_ups()
        started = time.monotonic()
        pid = self._start_vswitchd()
        controller = self.live.lab.controller.proc
        if controller is None or controller.poll() is not None:
            return f"{pid}; the switches connect once the controller is back"
        back = self._wait_switches_back(before, timeout_s)
        return f"{pid}; {back} in {time.monotonic() - started:.2f} s"

    # --- servers ----------------------------------------------------------------------------

    def kill_service(self, cloud: str) -> str:
        host = self.live.cloud_hosts[cloud]
        pid = _kill_group(self.live.nginx.get(cloud), f"nginx on {cloud}")
        return f"nginx on cloud {cloud} (host {host}, pid {pid}) killed with SIGKILL"

    def restart_service(self, cloud: str) -> str:
        live = self.live
        host = live.cloud_hosts[cloud]
        proc = live.nginx.get(cloud)
        if proc is not None and proc.poll() is None:
            raise FaultError(f"nginx on {cloud} is running")
        live.nginx[cloud] = start_nginx(
            live.lab.host(host), live.plan.sites, live.ca, live.run_dir, live.record
        )
        return f"nginx on cloud {cloud} (host {host}) restarted (pid {live.nginx[cloud].pid})"

    def kill_dns(self) -> str:
        pid = _kill_group(self.live._dnsmasq, "dnsmasq")
        address = self.live.scenario.dns.address
        return f"dnsmasq, the resolver {address} (pid {pid}), killed with SIGKILL"

    def restart_dns(self) -> str:
        live = self.live
        if live._dnsmasq is not None and live._dnsmasq.poll() is None:
            raise FaultError("dnsmasq is running")
        live._dnsmasq = start_dnsmasq(
            live.lab.host("dns1"), str(live.scenario.dns.address), live._dns_records(),
            live.run_dir, live.record, hosts_file=live.hosts_file,
        )  # fmt: skip
        return f"dnsmasq restarted (pid {live._dnsmasq.pid})"

    # --- the run directory's file system ----------------------------------------------------

    def fill_disk(self) -> str:
        """Fill the file system of the run directory with one file, to the last block; refused
        on one with more free space than TSPULAB_FILL_DISK_MAX_MB (default 1024)."""
        run_dir: Path = self.live.run_dir
        st = os.statvfs(run_dir)
        free = st.f_bfree * st.f_frsize  # root may use the reserved blocks too
        limit_mb = int(os.environ.get(FILL_MAX_ENV, FILL_MAX_MB_DEFAULT))
        if free > limit_mb * 1024 * 1024:
            raise FaultError(
                f"refused: the run directory's file system has {free / 2**20:,.0f} MiB free, "
                f"more than fill-disk fills ({limit_mb} MiB, {FILL_MAX_ENV}); put the runs "
                "directory on a small file system (mount -t tmpfs -o size=64m tmpfs RUNS_DIR)"
            )
        self.filler = run_dir / FILL_NAME
        written = 0
        with self.filler.open("wb", buffering=0) as f:
            for chunk in (1 << 20, 1 << 12, 1 << 9, 1):
                block = bytes(chunk)
                try:
                    while True:
                        written += f.write(block) or 0
                except OSError as err:
                    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
        mib = written / 2**20
        return f"run directory's file system filled ({mib:,.1f} MiB written to {FILL_NAME})"

    def free_disk(self) -> str:
        if self.filler is None or not self.filler.exists():
            raise FaultError("the file system was not filled by fill-disk")
        size = self.filler.stat().st_size
        self.filler.unlink()
        self.filler = None
        return f"{size / 2**20:,.1f} MiB freed"

    def disk_free(self) -> int:
        st = os.statvfs(self.live.run_dir)
        return int(st.f_bfree * st.f_frsize)

    # --- what is down now -----------------------------------------------------------------

    def reasons(self, cloud: str | None = None) -> list[str]:
        """Every part of the lab that is down at this moment, in words; nginx only for `cloud`
        (the cloud of the service a probe tried), every cloud when None."""
        live = self.live
        out = []
        controller = live.lab.controller.proc
        if controller is None or controller.poll() is not None:
            out.append(f"controller down ({_exit_words(controller)})")
        if self.ovs_down():
            out.append("ovs-vswitchd down: no switch forwards")
        nginx: dict[str, Any] = getattr(live, "nginx", {})
        for name, proc in nginx.items():
            if (cloud is None or name == cloud) and proc.poll() is not None:
                host = live.cloud_hosts.get(name, "?")
                out.append(f"service nginx on cloud {name} (host {host}) not running")
        dns = live._dnsmasq
        if dns is not None and dns.poll() is not None:
            out.append(
                f"dnsmasq on dns1 ({live.scenario.dns.address}) not running: no names resolve"
            )
        with contextlib.suppress(OSError):
            free = self.disk_free()
            if free < FULL_BELOW_BYTES:
                out.append(f"run directory's file system full ({free:,} bytes free)")
        return out

    def before_teardown(self) -> list[str]:
        """Make teardown possible after a fault that lasts until the end: the filled space freed
        (the last results, the report and a restarted daemon's files need it), ovs-vswitchd
        again (a dead one hangs Mininet's `ovs-vsctl del-br`). What was done is kept in
        `teardown_notes`."""
        notes = []
        if self.filler is not None:
            with contextlib.suppress(FaultError, OSError):
                notes.append(self.free_disk() + " for the teardown")
        if self.ovs_down():
            try:
                notes.append(self._start_vswitchd() + " for the teardown")
            except (OSError, subprocess.SubprocessError, ValueError) as err:
                notes.append(f"ovs-vswitchd could not be started for the teardown: {err}")
        self.teardown_notes += notes
        return notes
