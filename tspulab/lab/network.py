"""Bring a Mininet topology up on the run's private Open vSwitch, and take it down again.

The lab runs inside the run's sandbox (`tspulab.lab.sandbox`): its own network, PID and mount
namespaces, so nothing of it exists in the machine's root namespace and labs run side by side.
Order of bring-up: private OVS → controller (already listening) → Mininet build with
`OVSSwitch(datapath='user')` (`'kernel'` where the Open vSwitch module is loaded: the test VM,
`tspulab.lab.ovs.choose_datapath`) and a `RemoteController` on 127.0.0.1 → offloads off on every
interface (the userspace datapath does not fill in checksums the kernel left to the NIC, and TCP
then hangs) → record every root-namespace interface and every host shell's PID.
Links, addresses, routes and offloads are made through netlink in this process
(`tspulab.lab.netlink`), and the switches are created in one `ovs-vsctl` transaction: a process
costs 40-55x more in the test VM.
Teardown is the reverse, and then the record is replayed to catch anything left.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController
from mininet.topo import Topo

from tspulab.contracts import EventKind, events_of
from tspulab.controllers.config import ControllerConfig
from tspulab.lab.controller import ControllerProcess
from tspulab.lab.netlink import SOCKETS, NetlinkHost, NetlinkIntf, NetlinkLink, NetlinkNode
from tspulab.lab.netlink import offloads_off as netlink_offloads_off
from tspulab.lab.ovs import PrivateOVS, choose_datapath
from tspulab.lab.record import RunRecord, cleanup
from tspulab.lab.sandbox import require_sandbox
from tspulab.lab.services import stop_servers
from tspulab.lab.timescale import scaled
from tspulab.metrics.results import read_results

OFFLOADS = ("rx", "tx", "tso", "gso", "gro", "sg")


class OsKenController(RemoteController):  # type: ignore[misc]
    """Mininet's RemoteController, minus its telnet probe of the port.

    Mininet checks the controller with `echo A | telnet` and decodes the answer as UTF-8; when
    telnet prints os-ken's OpenFlow HELLO (a random transaction id) that decode fails about one
    bring-up in ten. The lab has already waited for the port with a socket connect.
    """

    def checkListening(self) -> None:
        return None


class LabError(RuntimeError):
    pass


def _uuids(column: Any) -> list[str]:
    """UUIDs in an OVSDB JSON column: ["uuid", U] or ["set", [["uuid", U], ...]]."""
    kind, value = column
    if kind == "uuid":
        return [value]
    return [u for _, u in value] if kind == "set" else []


def expected_switch_links(topo: Topo) -> list[str]:
    """Root-namespace interface names Mininet will create for the switches' ports."""
    names = []
    for sw in topo.switches():
        ports = sorted(topo.ports.get(sw, {}).keys())
        names += [f"{sw}-eth{p}" for p in ports]
    return names


def offloads_off(node: Any, intfs: Iterable[Any]) -> None:
    names = [intf.name for intf in intfs if intf.name != "lo"]
    netlink_offloads_off(node, names, OFFLOADS)


class LabSwitch(NetlinkNode, OVSSwitch):  # type: ignore[misc]
    """Mininet's OVSSwitch, fail mode `secure`, on the lab's datapath.

    A class (not a `functools.partial`) so that Mininet starts every switch in one `ovs-vsctl`
    transaction: it batches only switch classes that have `batchStartup`.
    """

    datapath_default = "user"

    def __init__(self, name: str, **params: Any) -> None:
        params.setdefault("datapath", self.datapath_default)
        params.setdefault("failMode", "secure")
        super().__init__(name, **params)


def switch_class(datapath: str) -> type[LabSwitch]:
    return type("LabSwitch", (LabSwitch,), {"datapath_default": datapath})


@dataclass
class Lab:
    """A running network: private OVS, os-ken controller, Mininet nodes."""

    run_dir: Path
    topo: Topo
    controller_config: Path
    record: RunRecord
    ovs: PrivateOVS = field(init=False)
    controller: ControllerProcess = field(init=False)
    net: Mininet | None = None
    timings: dict[str, float] = field(default_factory=dict)
    datapath: str = field(default_factory=choose_datapath)
    """"kernel" where the Open vSwitch module is loaded, else "user" (tspulab.lab.ovs)."""

    def __post_init__(self) -> None:
        self.ovs = PrivateOVS(self.run_dir, self.record)
        self.controller = ControllerProcess(self.run_dir, self.record, self.controller_config)

    def start(self) -> None:
        setLogLevel("warning")
        t0 = time.monotonic()
        # Every interface, process and socket of the lab lives in the run's own namespaces.
        require_sandbox("a lab")
        self.record.sandbox()
        for name in expected_switch_links(self.topo):
            self.record.link(name)
        self.ovs.start()
        self.controller.start()
        self.timings["ovs_and_controller_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        self.net = Mininet(
            topo=self.topo,
            switch=switch_class(self.datapath),
            host=NetlinkHost,
            link=NetlinkLink,
            intf=NetlinkIntf,
            controller=None,
            autoSetMacs=True,
            build=False,
            waitConnected=False,
        )
        self.net.addController(
            OsKenController("c0", ip=self.controller.host, port=self.controller.port)
        )
        self.net.build()
        for host in self.net.hosts:
            self.record.process(host.pid, f"mininet host {host.name}", group_leader=True)
        self.net.start()
        for host in self.net.hosts:
            offloads_off(host, host.intfList())
        for switch in self.net.switches:
            offloads_off(switch, switch.intfList())
        self._wait_switches_up(timeout_s=scaled(45))
        self._apply_fail_mode()
        self.timings["mininet_s"] = time.monotonic() - t1

    def _delete_nft_tables(self) -> None:
        """The controller's state outside the run directory goes with the controller: its
        nftables tables (random loss) and its control socket."""
        for entry in self.record.entries():
            if entry["kind"] == "nft-table":
                subprocess.run(
                    ["nft", "delete", "table", entry["family"], entry["name"]],
                    check=False, capture_output=True,
                )  # fmt: skip
            elif entry["kind"] == "file":
                Path(entry["path"]).unlink(missing_ok=True)

    def _apply_fail_mode(self) -> None:
        """What the TSPU switch does if its controller dies (a profile/scenario setting).

        closed: OVS `secure` mode: judged flows and registry drops stay, new flows go nowhere.
        open: OVS `standalone` mode, a DPI bypass: once the controller has been silent for three
        inactivity probes (set to the 1 s minimum), the switch forwards everything as a plain
        learning switch.

        The other switches are plain learning switches: they always fall back to learning on
        their own, so a dead controller tests the TSPU's fail mode and nothing else.
        """
        assert self.net is not None
        config = ControllerConfig.load(self.controller_config)
        standalone = []
        for switch in self.net.switches:
            if any(f.dpid == int(switch.dpid, 16) for f in config.old_filters):
                continue  # an ISP's old filter is in the path and fails closed, as it did
            tspu = config.tspu_by_dpid(int(switch.dpid, 16))
            if tspu is None or tspu.fail_mode == "open":
                standalone.append(switch.name)
        if not standalone:
            return
        # One read and one transaction for every switch (a process per change costs in the VM).
        listing = subprocess.run(
            ["ovs-vsctl", "--format=json", "--columns=name,controller", "list", "bridge"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        changes: list[str] = []
        for name, controllers in json.loads(listing)["data"]:
            if name not in standalone:
                continue
            changes += ["--", "set-fail-mode", name, "standalone"]
            for uuid in _uuids(controllers):
                changes += ["--", "set", "controller", uuid, "inactivity_probe=1000"]
        subprocess.run(["ovs-vsctl", *changes], check=True)

    def _wait_switches_up(self, timeout_s: float) -> None:
        """Wait for the controller's `switch-up` event of every switch (and the TSPU's rules).

        Mininet's waitConnected polls OVSDB's `is_connected`, which ovs-vswitchd refreshes only
        every few seconds; the controller knows at once.
        """
        assert self.net is not None
        dpids = {int(sw.dpid, 16) for sw in self.net.switches}
        config = ControllerConfig.load(self.controller_config)
        events_log = config.events_log
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = read_results(events_log) if events_log else []
            up = {e["dpid"] for e in events_of(events, EventKind.SWITCH_UP)}
            installed = len(events_of(events, EventKind.TSPU_RULES_INSTALLED))
            filters = len(events_of(events, EventKind.OLD_FILTER_RULES_INSTALLED))
            tspu_ready = installed >= len(config.tspus) and filters >= len(config.old_filters)
            if dpids <= up and tspu_ready:
                return
            time.sleep(0.02)
        raise LabError(
            f"switches did not connect to the controller within {timeout_s} s; "
            f"see {self.controller.log_path}"
        )

    def host(self, name: str) -> Any:
        assert self.net is not None
        return self.net.get(name)

    def dump_flows(self, switch: str) -> str:
        return subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def dump_ports(self, switch: str) -> str:
        return subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", switch],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def stop(self) -> list[str]:
        """Stop everything; return what the final record replay still had to remove."""
        t = time.monotonic()
        stop_servers()
        self.timings["stop_servers_s"] = time.monotonic() - t
        if self.net is not None:
            try:
                self.net.stop()
            finally:
                self.net = None
        self.timings["stop_mininet_s"] = time.monotonic() - t
        SOCKETS.close()
        self.controller.stop()
        self._delete_nft_tables()
        self.ovs.stop()
        self.timings["stop_total_s"] = time.monotonic() - t
        return cleanup(self.record)
