"""The VM tier's measurements, run inside the guest (scripts/vm-run.sh boots it; tests/vm/ asserts).

    .venv/bin/python tests/vm/guest_checks.py --out /job/results.json [--only NAME ...]

Each check measures and records (the host side decides pass or fail, so a failure still shows the
figures); results.json is rewritten after every check, so a check that hangs past the tier's
time still leaves the others. Every command has a timeout. A process costs 40-55x more in the
emulated guest than on the host, so the checks start as few as they can.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tspulab.lab.linkshape import netem_args  # noqa: E402
from tspulab.scenario.links import Shape  # noqa: E402

#: Round trip the netem check puts on one veth link.
NETEM_RTT_MS = 50.0
RUN_TIMEOUT_S = 600
PROBE_FIELDS = ("kind", "service", "subscriber", "round", "ok", "outcome", "target",
                "size_download", "speed_download_bps", "time_namelookup_s", "time_connect_s",
                "time_appconnect_s", "time_starttransfer_s", "time_total_s")  # fmt: skip


def sh(*argv: str, timeout: float = 60, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def ping_rtts(argv: list[str], timeout: float = 60) -> list[float]:
    out = sh(*argv, timeout=timeout)
    return [float(m) for m in re.findall(r"time=([0-9.]+) ms", out)]


# --- checks ---------------------------------------------------------------------------------


def check_modules() -> dict[str, Any]:
    """`modprobe sch_netem openvswitch` works on Debian's kernel."""
    sh("modprobe", "-a", "sch_netem", "openvswitch")
    loaded = {m: Path(f"/sys/module/{m}").exists() for m in ("sch_netem", "openvswitch")}
    return {"loaded": loaded, "kernel": sh("uname", "-r").strip()}


def check_netem_veth() -> dict[str, Any]:
    """A veth link between two namespaces, pinged before and after it gets the lab's own netem
    arguments (half the round trip on each end): what netem adds is the difference, as the
    emulated guest's own round trip (a few ms under load) is not netem's."""
    shape = Shape(delay_ms=NETEM_RTT_MS)
    ping = ["ip", "netns", "exec", "vma", "ping", "-n", "-c", "21", "-i", "0.1", "10.99.0.2"]
    for ns in ("vma", "vmb"):
        sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", "va", "netns", "vma", "type", "veth", "peer", "vb", "netns", "vmb")
        for ns, dev, addr in (("vma", "va", "10.99.0.1/24"), ("vmb", "vb", "10.99.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        before = ping_rtts(ping)[1:]  # the first waits for ARP
        for ns, dev in (("vma", "va"), ("vmb", "vb")):
            sh("ip", "netns", "exec", ns, "sh", "-c",
               f"tc qdisc replace dev {dev} root netem {netem_args(shape)}")  # fmt: skip
        after = ping_rtts(ping)[1:]
    finally:
        for ns in ("vma", "vmb"):
            sh("ip", "netns", "del", ns, check=False)
    return {"configured_rtt_ms": NETEM_RTT_MS, "rtts_ms": after, "baseline_rtts_ms": before,
            "netem": netem_args(shape)}  # fmt: skip


def check_ovs_kernel_datapath() -> dict[str, Any]:
    """An Open vSwitch bridge on the kernel datapath (datapath_type=system) forwards between two
    namespaces; the kernel's flow table shows the flows it switched."""
    d = Path(tempfile.mkdtemp(prefix="ovs-", dir="/tmp"))
    os.environ.update({"OVS_RUNDIR": str(d), "OVS_DBDIR": str(d), "OVS_LOGDIR": str(d)})
    schema = "/usr/share/openvswitch/vswitch.ovsschema"
    sh("ovsdb-tool", "create", str(d / "conf.db"), schema)
    sh("ovsdb-server", str(d / "conf.db"), f"--remote=punix:{d / 'db.sock'}",
       f"--pidfile={d / 'ovsdb.pid'}", "--detach", "--no-chdir", f"--log-file={d / 'db.log'}")  # fmt: skip
    sh("ovs-vsctl", "--no-wait", "init")
    sh("ovs-vswitchd", f"unix:{d / 'db.sock'}", f"--pidfile={d / 'vswitchd.pid'}", "--detach",
       "--no-chdir", f"--log-file={d / 'vswitchd.log'}")  # fmt: skip
    try:
        sh("ip", "netns", "add", "ovsa")
        sh("ip", "netns", "add", "ovsb")
        sh("ovs-vsctl", "--", "add-br", "vmbr0", "--", "set", "bridge", "vmbr0",
           "datapath_type=system", "fail_mode=standalone",
           "--", "add-port", "vmbr0", "ova", "--", "add-port", "vmbr0", "ovb")  # fmt: skip
        for ns, dev, peer, addr in (("ovsa", "ova", "pa", "10.98.0.1/24"),
                                    ("ovsb", "ovb", "pb", "10.98.0.2/24")):  # fmt: skip
            sh("sh", "-c", f"ip link add {dev} type veth peer {peer} netns {ns} && "
               f"ip link set {dev} up && ip -n {ns} addr add {addr} dev {peer} && "
               f"ip -n {ns} link set {peer} up")  # fmt: skip
        rtts = ping_rtts(["ip", "netns", "exec", "ovsa", "ping", "-n", "-c", "3", "-i", "0.3",
                          "-W", "5", "10.98.0.2"])  # fmt: skip
        datapaths = sh("ovs-dpctl", "show")
        flows = sh("ovs-dpctl", "dump-flows")
        return {
            "rtts_ms": rtts,
            "datapath_type": sh("ovs-vsctl", "get", "bridge", "vmbr0", "datapath_type").strip(),
            "kernel_datapath": "system@ovs-system" in datapaths,
            "kernel_flows": len([line for line in flows.splitlines() if "actions:" in line]),
        }
    finally:
        ctl = d / f"ovs-vswitchd.{(d / 'vswitchd.pid').read_text().strip()}.ctl"
        sh("ovs-appctl", "-t", str(ctl), "exit", "--cleanup", check=False)
        sh("ovs-appctl", "-t", str(d / f"ovsdb-server.{(d / 'ovsdb.pid').read_text().strip()}.ctl"),
           "exit", check=False)  # fmt: skip
        for ns in ("ovsa", "ovsb"):
            sh("ip", "netns", "del", ns, check=False)


#: One lab for both slowdowns (a Python start costs a minute or more in the emulated guest, and
#: a `tspulab run` makes three): ISP `twit` behind a twitter-throttle-2021 TSPU, ISP `yt` behind
#: a youtube-2024 one, the services of scenarios/twitter-2021.yaml and youtube-2024.yaml that
#: show the effects, and links giving a 50 ms round trip to the foreign clouds (fibre 2 ms +
#: exchange 1 ms + foreign 47 ms). Two rounds: in the emulated guest the first packets of every
#: flow wait seconds for the controller, so the first round's pings and lookups measure that.
SCENARIO = """\
version: 1
name: vm-tier
description: "twitter-throttle-2021 and youtube-2024 side by side at a 50 ms round trip"
topology: {name: isps}
profile: twitter-throttle-2021
isps:
  - {name: twit, subscribers: 1, profile: twitter-throttle-2021}
  - {name: yt, subscribers: 1, profile: youtube-2024}
clouds:
  - {name: twitter, prefixes: [104.244.40.0/21]}
  - {name: google, prefixes: [173.194.0.0/16]}
  - {name: yandex, prefixes: [77.88.55.0/24], domestic: true}
services:
  - {name: twitter, role: target, domains: [twitter.com], cloud: twitter, address: 104.244.42.65}
  - {name: googlevideo, role: target, domains: [rr1---sn-4g5e6nzz.googlevideo.com], cloud: google,
     address: 173.194.182.9}
  - {name: google, role: innocent, domains: [www.google.com], cloud: google,
     address: 173.194.182.10}
  - {name: yandex, role: innocent, domains: [yandex.ru], cloud: yandex, address: 77.88.55.60}
probes:
  rounds: 2
  timeout_s: 60
  transfer_bytes: 524288
  kinds: [https, ping]
links:
  access: fibre
  classes:
    foreign: {delay: 47ms}
"""
SCENARIO_RTT_MS = {"twitter": 50.0, "google": 50.0, "yandex": 2.0 + 1.0 + 4.0}


def run_scenario_file(path: Path) -> dict[str, Any]:
    """`tspulab run` (the user's command) on a scenario; what its run directory says, also when
    it had to be stopped (SIGTERM tears the lab down; what was measured stays)."""
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir="/var/tmp"))
    t0 = time.monotonic()
    argv = [str(REPO / ".venv" / "bin" / "tspulab"), "run", str(path), "--runs-dir", str(runs)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        output += f"\n[stopped after {RUN_TIMEOUT_S} s]"
    elapsed = time.monotonic() - t0
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    if not run_dirs:
        raise RuntimeError(f"no run directory; exit {proc.returncode}: {output[-2000:]}")
    run_dir = run_dirs[-1]
    meta = json.loads((run_dir / "run.json").read_text())
    results = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] \
        if results.exists() else []  # fmt: skip
    out = Path("/job/runs")
    if out.parent.exists():  # copy the run out (sockets stay behind)
        out.mkdir(exist_ok=True)
        subprocess.run(f"tar -C {runs} -cf - . 2>/dev/null | tar -C {out} -xf -", shell=True,
                       check=False, timeout=120)  # fmt: skip
    summary = run_dir / "summary.json"
    return {
        "exit": proc.returncode,
        "seconds": round(elapsed, 1),
        "output_tail": output[-2500:],
        "run_dir": run_dir.name,
        "delays": meta.get("delays"),
        "netem": meta.get("netem"),
        "datapath": meta.get("datapath"),
        "lab_timings_s": json.loads(summary.read_text()).get("lab_timings_s")
        if summary.exists()
        else None,
        "probes": [{k: r.get(k) for k in PROBE_FIELDS} for r in rows],
    }


def check_lab() -> dict[str, Any]:
    """Both slowdowns in one real lab, through `tspulab run`."""
    path = Path(tempfile.mkdtemp(prefix="scn-", dir="/tmp")) / "vm-tier.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return {**run_scenario_file(path), "configured_rtt_ms": SCENARIO_RTT_MS}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "modules": check_modules,
    "netem_veth": check_netem_veth,
    "ovs_kernel_datapath": check_ovs_kernel_datapath,
    "lab": check_lab,
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=sorted(CHECKS))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name, check in CHECKS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.monotonic()
        try:
            results[name] = {"ok": True, **check()}
        except Exception as err:  # a failed check is a result: the host side shows it
            results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                             "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
        results[name]["check_s"] = round(time.monotonic() - t0, 1)
        print(f"{name}: {results[name]['check_s']} s ok={results[name]['ok']}", flush=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
