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

#: Round trip the netem check puts on one veth link, and the delay split of the scenario checks.
NETEM_RTT_MS = 50.0
TWITTER_RTT_MS = 50.0
RUN_TIMEOUT_S = 420
PROBE_FIELDS = ("kind", "service", "subscriber", "ok", "outcome", "target", "size_download",
                "speed_download_bps", "time_namelookup_s", "time_connect_s", "time_total_s")  # fmt: skip


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
    """A veth link between two namespaces with the lab's own netem arguments (half the round trip
    on each end): ping's round trip against the configured one."""
    shape = Shape(delay_ms=NETEM_RTT_MS)
    for ns in ("vma", "vmb"):
        sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", "va", "netns", "vma", "type", "veth", "peer", "vb", "netns", "vmb")
        for ns, dev, addr in (("vma", "va", "10.99.0.1/24"), ("vmb", "vb", "10.99.0.2/24")):
            sh("ip", "netns", "exec", ns, "sh", "-c",
               f"ip addr add {addr} dev {dev} && ip link set {dev} up && "
               f"tc qdisc replace dev {dev} root netem {netem_args(shape)}")  # fmt: skip
        rtts = ping_rtts(["ip", "netns", "exec", "vma", "ping", "-n", "-c", "10", "-i", "0.2",
                          "10.99.0.2"])  # fmt: skip
    finally:
        for ns in ("vma", "vmb"):
            sh("ip", "netns", "del", ns, check=False)
    return {"configured_rtt_ms": NETEM_RTT_MS, "rtts_ms": rtts, "netem": netem_args(shape)}


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


def derived_scenario(name: str, extra: str, replace: dict[str, str]) -> Path:
    """A shipped scenario with a `links:` section added (and some values changed), in /tmp."""
    text = (REPO / "scenarios" / f"{name}.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        if old not in text:
            raise RuntimeError(f"scenarios/{name}.yaml no longer has {old!r}")
        text = text.replace(old, new)
    path = Path(tempfile.mkdtemp(prefix="scn-", dir="/tmp")) / f"{name}-vm.yaml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


def run_scenario_file(path: Path) -> dict[str, Any]:
    """`tspulab run` (the user's command) on a scenario; what its run directory says."""
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir="/var/tmp"))
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "tspulab"), "run", str(path), "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    if not run_dirs:
        raise RuntimeError(f"no run directory; exit {proc.returncode}: {proc.stderr[-2000:]}")
    run_dir = run_dirs[-1]
    meta = json.loads((run_dir / "run.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()
            if line.strip()]  # fmt: skip
    out = Path("/job/runs")
    if out.parent.exists():  # copy the run out (sockets stay behind)
        out.mkdir(exist_ok=True)
        subprocess.run(f"tar -C {runs} -cf - . 2>/dev/null | tar -C {out} -xf -", shell=True,
                       check=False, timeout=120)  # fmt: skip
    return {
        "exit": proc.returncode,
        "seconds": round(elapsed, 1),
        "stderr_tail": proc.stderr[-1500:],
        "run_dir": run_dir.name,
        "delays": meta.get("delays"),
        "netem": meta.get("netem"),
        "lab_timings_s": meta.get("lab_timings_s"),
        "probes": [{k: r.get(k) for k in PROBE_FIELDS} for r in rows],
    }


def check_twitter() -> dict[str, Any]:
    """twitter-throttle-2021 at a 50 ms round trip: fibre (2 ms) + exchange (1 ms) + 47 ms to
    Twitter's foreign clouds; pings beside the HTTPS probes measure the round trip itself."""
    extra = "links:\n  access: fibre\n  classes:\n    foreign: {delay: 47ms}\n"
    path = derived_scenario(
        "twitter-2021", extra, {"probes:\n": "probes:\n  kinds: [https, ping]\n"}
    )
    result = run_scenario_file(path)
    result["configured_rtt_ms"] = TWITTER_RTT_MS
    return result


def check_youtube() -> dict[str, Any]:
    """youtube-2024 with the default links (Google abroad: fibre + exchange + foreign = 53 ms);
    1 MiB per transfer, which at the published 45-180 KB/s takes 6-23 s."""
    changes = {"transfer_bytes: 8388608": "transfer_bytes: 1048576", "timeout_s: 30": "timeout_s: 60",
               "probes:\n": "probes:\n  kinds: [https, ping]\n"}  # fmt: skip
    path = derived_scenario("youtube-2024", "links: {}\n", changes)
    result = run_scenario_file(path)
    result["configured_rtt_ms"] = 53.0
    return result


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "modules": check_modules,
    "netem_veth": check_netem_veth,
    "ovs_kernel_datapath": check_ovs_kernel_datapath,
    "twitter": check_twitter,
    "youtube": check_youtube,
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
