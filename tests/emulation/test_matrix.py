"""`tspulab matrix` on real labs: a small matrix in two parallel labs, its report opened in
headless Chromium, and the same kind of matrix as a Slurm job array on a one-node cluster.

The small matrix is 3 methods × 2 profiles × 1 trial: direct (the control: the target is in the
registry), WireGuard and trojan, under tspu-2022 and vpn-protocols-2023. WireGuard is dropped by
fingerprint under vpn-protocols-2023 (docs/tspu-behaviour.md §5.4) and passes tspu-2022; trojan
passes both. The Slurm test starts slurmctld and slurmd (Debian's slurm-wlm, auth/none, its own
configuration in a temporary folder) in a sandbox of their own, submits
examples/slurm/submit.sh (an array of 2 shards, then the merge after it), waits for the merge
and reads the merged matrix.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import in_sandbox
from tspulab.matrix.merge import merge_records
from tspulab.matrix.outcomes import load_outcomes
from tspulab.matrix.plan import Shard
from tspulab.matrix.records import Header, LabRecord, MatrixSpec, TrialRecord, read_results
from tspulab.matrix.report import build_report, write_reports
from tspulab.matrix.runner import RunOptions, run_matrix

REPO = Path(__file__).resolve().parents[2]
SPEC = MatrixSpec(
    methods=("direct", "wireguard", "trojan"),
    profiles=("tspu-2022", "vpn-protocols-2023"),
    trials=1,
    transfer_bytes=65536,
    timeout_s=6.0,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("matrix")
    started = time.monotonic()
    results = run_matrix(SPEC, Shard(1, 1), out, RunOptions(jobs=2, concurrency=3), log=print)
    wall = time.monotonic() - started
    records = merge_records([results])
    report = write_reports(records, out, load_outcomes())
    return {"out": out, "records": records, "report": report, "wall": wall}


def test_every_cell_measured_in_two_labs(small: dict[str, Any]) -> None:
    records = small["records"]
    labs = [r for r in records if isinstance(r, LabRecord)]
    assert len(labs) == 2 and not [lab.error for lab in labs if lab.error]
    assert sorted(m for lab in labs for m in lab.methods) == sorted(SPEC.methods)
    trials = [r for r in records if isinstance(r, TrialRecord)]
    assert len(trials) == 6
    print(f"\nsmall matrix: {small['wall']:.0f} s; bring-up {[lab.bringup_s for lab in labs]}")


def test_the_cells_are_what_the_profiles_do(small: dict[str, Any]) -> None:
    report = small["report"]

    def cell(method: str, profile: str) -> Any:
        found = report.cell(method, profile)
        assert found is not None
        return found

    for profile in SPEC.profiles:
        assert cell("direct", profile).successes == 0, "the target is in the registry"
        trojan = cell("trojan", profile)
        assert trojan.successes == 1, trojan.outcomes
        assert trojan.goodput_mbps and trojan.ttfb_ms
    assert cell("wireguard", "tspu-2022").successes == 1
    blocked = cell("wireguard", "vpn-protocols-2023")
    assert blocked.successes == 0
    assert blocked.actions.get("vpn-protocols:drop", 0) >= 1, blocked.actions
    assert blocked.protocols.get("wireguard", 0) >= 1
    # Against docs/tspu-behaviour.md §6: both WireGuard cells and trojan under tspu-2022 have
    # records, and the lab agrees with them.
    assert blocked.agreement == "agree" and blocked.record.id == "plain-vpn-protocol-block"
    assert cell("trojan", "tspu-2022").agreement == "agree"
    assert not report.disagreements


def test_the_report_opens_in_headless_chromium(small: dict[str, Any]) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium not installed (scripts/setup.sh installs it)")
    page = small["out"] / "report.html"
    # --no-sandbox: Chromium's own sandbox refuses to run as root.
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'id="matrix"' in dom and dom.count('class="cell ') == 6
    assert "0 disagreement(s)" in dom.replace("<b>", "").replace("</b>", "")
    assert "N4P-#76, N4P-#274" in dom  # the §6 record beside the blocked WireGuard cell


# --- Slurm -------------------------------------------------------------------------------------

SLURM_CONF = """ClusterName=tspulab
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=lab Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
#: slurmd 22.05 initialises a cgroup plugin even with proctrack/pgid and task/none; a tmpfs in
#: the sandbox's own mount namespace satisfies it without touching the machine's cgroups.
CGROUP_CONF = "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nIgnoreSystemd=yes\n"


def _slurm(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.returncode} {proc.stderr.strip()}")
    return proc.stdout


def _slurm_job(work: Path) -> dict[str, Any]:
    """Inside a sandbox: a one-node Slurm cluster, the matrix submitted as an array + merge."""
    host = socket.gethostname()
    state = work / "slurm"
    for sub in ("state", "spool"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    conf = state / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, d=state))
    (state / "cgroup.conf").write_text(CGROUP_CONF)
    subprocess.run(["mount", "-t", "tmpfs", "tspulab-cgroup", "/sys/fs/cgroup"], check=True)
    # Slurm resolves its addresses with AI_ADDRCONFIG, which counts no loopback address: the
    # sandbox's network namespace gets one interface with an address of its own.
    for cmd in (
        "ip link add slurm0 type veth peer name slurm1",
        "ip addr add 10.255.0.1/24 dev slurm0",
        "ip link set slurm0 up",
        "ip link set slurm1 up",
    ):
        subprocess.run(cmd.split(), check=True)
    env = dict(os.environ, SLURM_CONF=str(conf))
    daemons = [
        subprocess.Popen(
            ["slurmctld", "-D", "-i", "-f", str(conf)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            ["slurmd", "-D", "-f", str(conf), "-N", host], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (
            "idle"
            not in subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False
            ).stdout
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm node not idle: {(state / 'slurmctld.log').read_text()}")
            time.sleep(0.5)
        out = work / "out"
        job_env = dict(
            env,
            TSPULAB=str(Path(sys.executable).parent / "tspulab"),
            MATRIX_OUT=str(out),
            MATRIX_ARGS=(
                "--methods direct,ss-chacha20 --profiles vpn-protocols-2023 --timeout 5 --jobs 1"
            ),
        )
        started = time.monotonic()
        merge_id = _slurm(
            [str(REPO / "examples" / "slurm" / "submit.sh"), "2"], job_env, work
        ).strip()
        deadline = time.monotonic() + 420
        while _slurm(["squeue", "-h", "-o", "%i %T"], env, work).strip():
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs still queued: {_slurm(['squeue'], env, work)}")
            time.sleep(1)
        wall = time.monotonic() - started
        logs = {p.name: p.read_text()[-1500:] for p in sorted(work.glob("tspulab-*.out"))}
        return {"merge_id": merge_id, "wall": wall, "out": out, "logs": logs}
    finally:
        for proc in daemons:
            proc.terminate()
        for proc in daemons:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.skipif(shutil.which("slurmctld") is None, reason="slurm-wlm not installed")
def test_slurm_job_array_runs_the_shards_and_merges(tmp_path: Path) -> None:
    got = in_sandbox(_slurm_job, tmp_path)
    logs = got["logs"]
    print(f"\nslurm: array of 2 shards and the merge in {got['wall']:.0f} s; logs {sorted(logs)}")
    # The array's two tasks and the merge each left their output file.
    assert len([n for n in logs if n.startswith("tspulab-matrix-")]) == 2, logs
    merged = got["out"] / "merged" / "matrix.jsonl"
    assert merged.exists(), logs
    records = read_results(merged)
    header = records[0]
    assert isinstance(header, Header) and header.shard == "1/2,2/2", header
    report = build_report(records, load_outcomes())
    assert report.absent == 0 and not report.unmeasured, logs
    assert report.cell("direct", "vpn-protocols-2023").successes == 0  # type: ignore[union-attr]
    assert report.cell("ss-chacha20", "vpn-protocols-2023").successes == 1  # type: ignore[union-attr]
    assert (got["out"] / "merged" / "report.html").exists()
    assert (got["out"] / "shard-1" / "matrix.jsonl").exists()
    assert (got["out"] / "shard-2" / "matrix.jsonl").exists()
