"""A private Open vSwitch for one run: its own database, ovsdb-server and ovs-vswitchd.

The run never touches a system-wide OVS. OVS tools find their daemons through `OVS_RUNDIR` (and
`OVS_DBDIR`, `OVS_LOGDIR`), so exporting those variables in this process points Mininet's
`ovs-vsctl`/`ovs-ofctl` calls at the private instance, and stopping the run stops exactly the two
daemons it started (by recorded PID), whatever else runs on the machine.

Without the Open vSwitch kernel module (this VM) bridges use the userspace datapath
(`datapath_type=netdev`, Mininet's `OVSSwitch(datapath='user')`); where the module is loaded (the
Vagrant VM) the kernel datapath can be chosen instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tspulab.lab.record import RunRecord, process_alive
from tspulab.lab.timescale import scaled

SCHEMA_CANDIDATES = (
    Path("/usr/share/openvswitch/vswitch.ovsschema"),
    Path("/usr/local/share/openvswitch/vswitch.ovsschema"),
)


class OVSError(RuntimeError):
    pass


def kernel_datapath_available() -> bool:
    """True if the openvswitch kernel module is loaded (then the kernel datapath could be used)."""
    return Path("/sys/module/openvswitch").exists()


#: `TSPULAB_DATAPATH=user` or `kernel` forces the switches' datapath; unset: `choose_datapath`.
DATAPATH_ENV = "TSPULAB_DATAPATH"


def choose_datapath() -> str:
    """Mininet's OVSSwitch datapath for the lab: "kernel" where the openvswitch module is loaded
    (the test VM, a user's machine after `modprobe openvswitch`), else "user" (netdev)."""
    forced = os.environ.get(DATAPATH_ENV, "")
    if forced in ("user", "kernel"):
        return forced
    return "kernel" if kernel_datapath_available() else "user"


def _read_pid(path: Path, timeout_s: float = 5.0) -> int:
    deadline = time.monotonic() + scaled(timeout_s)
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise OVSError(f"{path} did not appear within {timeout_s} s")


def _wait_gone(pid: int, timeout_s: float = 5.0) -> None:
    """Wait for a daemon asked to exit; the record's cleanup ends it if it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)


@dataclass
class PrivateOVS:
    """ovsdb-server + ovs-vswitchd living in `<run dir>/ovs`."""

    run_dir: Path
    record: RunRecord
    directory: Path = field(init=False)
    pids: dict[str, int] = field(default_factory=dict)
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = self.run_dir / "ovs"

    @property
    def env(self) -> dict[str, str]:
        d = str(self.directory)
        return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}

    def start(self) -> None:
        for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"):
            if shutil.which(tool) is None:
                raise OVSError(f"{tool} not found: install openvswitch-switch (scripts/setup.sh)")
        schema = next((p for p in SCHEMA_CANDIDATES if p.exists()), None)
        if schema is None:
            raise OVSError("vswitch.ovsschema not found: is openvswitch-switch installed?")
        self.directory.mkdir(parents=True, exist_ok=True)
        d = self.directory
        db, sock = d / "conf.db", d / "db.sock"
        # Export first: every OVS tool run from here on (ours and Mininet's) uses this instance.
        for key, value in self.env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        subprocess.run(["ovsdb-tool", "create", str(db), str(schema)], check=True)
        subprocess.run(
            [
                "ovsdb-server", str(db), f"--remote=punix:{sock}",
                f"--pidfile={d / 'ovsdb-server.pid'}", f"--log-file={d / 'ovsdb-server.log'}",
                "--detach", "--no-chdir",
            ],
            check=True, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.pids["ovsdb-server"] = _read_pid(d / "ovsdb-server.pid")
        self.record.process(self.pids["ovsdb-server"], "ovsdb-server", group_leader=True)
        subprocess.run(["ovs-vsctl", "--no-wait", "init"], check=True)
        subprocess.run(
            [
                "ovs-vswitchd", f"unix:{sock}",
                f"--pidfile={d / 'ovs-vswitchd.pid'}", f"--log-file={d / 'ovs-vswitchd.log'}",
                "--detach", "--no-chdir",
            ],
            check=True, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.pids["ovs-vswitchd"] = _read_pid(d / "ovs-vswitchd.pid")
        self.record.process(self.pids["ovs-vswitchd"], "ovs-vswitchd", group_leader=True)
        self.record.note(ovs_dir=str(d), kernel_datapath=kernel_datapath_available())

    def stop(self) -> None:
        """Stop the two daemons (they are also in the record, so a later clean finds them)."""
        vswitchd = self.pids.pop("ovs-vswitchd", None)
        if vswitchd is not None:
            ctl = self.directory / f"ovs-vswitchd.{vswitchd}.ctl"
            # `exit --cleanup` deletes the datapaths and their ports before leaving.
            subprocess.run(
                ["ovs-appctl", "-t", str(ctl), "exit", "--cleanup"],
                check=False, capture_output=True, timeout=10,
            )  # fmt: skip
        server = self.pids.pop("ovsdb-server", None)
        if server is not None:
            ctl = self.directory / f"ovsdb-server.{server}.ctl"
            subprocess.run(
                ["ovs-appctl", "-t", str(ctl), "exit"], check=False, capture_output=True, timeout=10
            )
        for pid in (p for p in (vswitchd, server) if p is not None):
            _wait_gone(pid)

        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
