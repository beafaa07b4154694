"""Faults during a run: each part of the lab killed (and started again) mid-run, the run directory's
file system filled, SIGTERM and Ctrl-C at a random moment. Every run ends with a report whose
"Faults" section says what failed and when, keeps every result written before, records the fault
on the probes made while it lasted (no probe hangs), and leaves nothing behind.

Two labs are shared by the fault tests (module-scoped): one fail-closed run that goes through
every kind of fault on a tmpfs run directory, one fail-open run of a controller kill. The signal
tests start `tspulab run` itself.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import LAB_TIMEOUT_S, leftovers, silent
from tspulab.contracts import EVENTS_FILE, FAULTS_FILE, FaultRecord, read_faults
from tspulab.lab.sandbox import start_sandbox
from tspulab.metrics.report import write_report
from tspulab.metrics.results import read_results
from tspulab.scenario.live import LiveLab
from tspulab.scenario.runner import run_scenario
from tspulab.scenario.schema import load_scenario_text
from tspulab.scenario.timeline_runner import TimelineRun, planned_probes
from tspulab.scenario.tspu_config import control_socket_path

REPO = Path(__file__).resolve().parents[2]
FAULTS_YAML = REPO / "scenarios" / "faults.yaml"
#: Kept out of the run directory's tmpfs: what the test reads back after the sandbox is gone.
KEPT = ("results.jsonl", FAULTS_FILE, "report.html", "run.json", "made.jsonl", "summary.json",
        EVENTS_FILE)  # fmt: skip


def scenario_text(faults: list[str], end_s: int, every_s: int = 4) -> str:
    """scenarios/faults.yaml with its own probe times, end and faults."""
    text = FAULTS_YAML.read_text()
    head = text[: text.index("\nprobes:")]
    items = "".join(f"  - {f}\n" for f in faults)
    return (
        f"{head}\nprobes:\n  timeout_s: 2\n  every: {every_s}s\n  from: [sub2]\n\n"
        f"timeline:\n  - {{at: +{end_s}s, label: end, probe: true}}\n\n"
        + (f"faults:\n{items}" if faults else "")
    )


def _keep(run_dir: Path, kept: Path) -> Path:
    out = kept / run_dir.name
    out.mkdir(parents=True)
    for name in KEPT:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out / name)
    return out


# --- every fault, fail-closed, on a 64 MiB tmpfs --------------------------------------------------

#: Each lasts over a probe time (every 2 s from 0); Open vSwitch comes back while the disk is
#: full (the controller's event log cannot say so then).
CLOSED_FAULTS = [
    "{at: +1s, kind: kill-controller, for: 4s}",
    "{at: +7s, kind: kill-service, target: gcp, for: 2s}",
    "{at: +11s, kind: kill-dns, for: 2s}",
    "{at: +15s, kind: kill-ovs, for: 4s}",
    "{at: +18s, kind: fill-disk, for: 3s}",
]


def _closed_run(base: Path) -> dict[str, Any]:
    small = base / "small"
    small.mkdir()
    # The sandbox's own mount namespace: the tmpfs exists for this run only.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    scenario = load_scenario_text(scenario_text(CLOSED_FAULTS, end_s=22, every_s=2), FAULTS_YAML)
    started = time.monotonic()
    outcome = run_scenario(scenario, small, bulk_transfer=False, fail_mode="closed", log=silent)
    took = time.monotonic() - started
    kept = _keep(outcome.run_dir, base / "kept")
    return {
        "run_dir": kept,
        "took_s": took,
        "report_faults": len(outcome.report.faults),
        "planned": planned_probes(scenario),
    }


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The two labs side by side (each in its own sandbox): the suite's time matters."""
    boxes = {
        "closed": start_sandbox(_closed_run, tmp_path_factory.mktemp("faults-closed")),
        "open": start_sandbox(_open_run, tmp_path_factory.mktemp("faults-open")),
    }
    try:
        return {name: box.wait(LAB_TIMEOUT_S) for name, box in boxes.items()}
    finally:
        for box in boxes.values():
            box.kill(wait=True)


@pytest.fixture(scope="module")
def closed(labs: dict[str, Any]) -> dict[str, Any]:
    got = labs["closed"]
    run_dir = got["run_dir"]
    records, problems = read_faults(run_dir / FAULTS_FILE)
    assert problems == []
    got["faults"] = records
    got["results"] = read_results(run_dir / "results.jsonl")
    return got


def _phases(records: list[FaultRecord], kind: str) -> dict[str, FaultRecord]:
    return {str(r.phase): r for r in records if r.fault == kind}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("kill-controller", "controller down"),
        ("kill-service", "service nginx on cloud gcp"),
        ("kill-dns", "dnsmasq on dns1"),
        ("kill-ovs", "ovs-vswitchd down"),
    ],
)
def test_a_killed_part_is_recorded_observed_restored_and_back(
    closed: dict[str, Any], kind: str, reason: str
) -> None:
    phases = _phases(closed["faults"], kind)
    assert {"injected", "observed", "restored", "recovered"} <= set(phases), phases
    assert "SIGKILL" in phases["injected"].detail
    # Traffic stopped while it was down (fail-closed: a new flow gets no verdict) ...
    stopped = phases["observed"].measured.get("stopped_after_s")
    assert stopped is not None and stopped < 3, phases["observed"].detail
    # ... and came back after the restart.
    assert phases["recovered"].measured.get("recovered_after_s") is not None, phases["recovered"]
    assert phases["restored"].measured["restart_s"] < 30
    # The probes made while it was down say why they failed, and none hung.
    during = [r for r in closed["results"] if reason in str(r.get("fault"))]
    assert during, f"no probe recorded {reason!r}"
    assert all(float(r["time_total_s"] or 0) < 10 for r in during if "time_total_s" in r)


def test_filling_the_disk_loses_no_result(closed: dict[str, Any]) -> None:
    phases = _phases(closed["faults"], "fill-disk")
    assert {"injected", "observed", "restored"} <= set(phases), phases
    assert "No space left" in phases["observed"].detail
    results = closed["results"]
    probes = [r for r in results if r.get("kind") == "https"]
    assert len(probes) == closed["planned"], "a probe result is missing"
    full = [r for r in probes if "file system full" in str(r.get("fault"))]
    assert full, "no probe ran while the disk was full"
    lines = (closed["run_dir"] / "results.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines), "a torn line in the middle"


def test_the_controllers_events_while_the_disk_was_full_are_kept(closed: dict[str, Any]) -> None:
    """The controller's event log holds what the full disk refused and writes it after."""
    phases = _phases(closed["faults"], "fill-disk")
    start, end = phases["injected"].wall_time, phases["restored"].wall_time
    lines = (closed["run_dir"] / EVENTS_FILE).read_text().splitlines()
    events = [json.loads(line) for line in lines]  # a line cut by the full disk was completed
    during = [e for e in events if start <= e["t"] <= end]
    assert during, f"no controller event between {start} and {end}: the full disk lost them"


def test_the_report_has_a_faults_section(closed: dict[str, Any]) -> None:
    page = (closed["run_dir"] / "report.html").read_text()
    assert "<h2>Faults</h2>" in page
    for kind in ("kill-controller", "kill-service", "kill-dns", "kill-ovs", "fill-disk"):
        assert kind in page
    assert closed["report_faults"] == len(closed["faults"])


def test_nothing_of_the_fault_run_is_left(closed: dict[str, Any]) -> None:
    assert leftovers(closed["run_dir"]) == []


# --- fail-open: the TSPU bypassed while its controller is dead; isolation of the controller ----

OPEN_FAULTS = ["{at: +2s, kind: kill-controller, for: 6s}"]


def _isolation(live: LiveLab) -> dict[str, Any]:
    """Where the controller listens (in the sandbox's network namespace), what a subscriber
    reaches of it, and who may use the control socket."""
    port = live.lab.controller.port
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    sub = live.host("sub1")
    from_sub = sub.cmd(
        f"curl -sS -m 2 telnet://127.0.0.1:{port} </dev/null; echo rc=$?; "
        f"curl -sS -m 2 telnet://{live.address_of_host['sub1']}:{port} </dev/null; echo rc=$?"
    )
    path = control_socket_path(live.run_dir)
    st = path.stat()
    nobody = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         "import socket, sys\n"
         "s = socket.socket(socket.AF_UNIX)\n"
         f"try: s.connect({str(path)!r})\n"
         "except PermissionError: sys.exit(13)\n"],
        capture_output=True, text=True,
    ).returncode  # fmt: skip
    with socket.socket(socket.AF_UNIX) as s:  # root, in the run: the channel works
        s.connect(str(path))
    return {
        "listening": listening,
        "from_sub": from_sub,
        "mode": st.st_mode & 0o777,
        "uid": st.st_uid,
        "nobody_rc": nobody,
    }


def _open_run(runs: Path) -> dict[str, Any]:
    scenario = load_scenario_text(scenario_text(OPEN_FAULTS, end_s=10, every_s=3), FAULTS_YAML)
    with LiveLab(scenario, runs, fail_mode="open", log=silent) as live:
        isolation = _isolation(live)
        timeline = TimelineRun(live)
        try:
            timeline.run()
        finally:
            timeline.faults.close()
    write_report(live.run_dir)
    return {"run_dir": live.run_dir, "isolation": isolation}


@pytest.fixture(scope="module")
def opened(labs: dict[str, Any]) -> dict[str, Any]:
    got = labs["open"]
    got["faults"], _ = read_faults(got["run_dir"] / FAULTS_FILE)
    got["results"] = read_results(got["run_dir"] / "results.jsonl")
    return got


def test_fail_open_bypasses_the_tspu_and_blocks_again_after_the_restart(
    opened: dict[str, Any],
) -> None:
    phases = _phases(opened["faults"], "kill-controller")
    observed = phases["observed"].measured
    # New flows pass again once the switch stands alone; the blocked target gets through too.
    assert 0 < observed["flows_after_s"] < 10, phases["observed"].detail
    assert 0 < observed["bypass_after_s"] < 10, phases["observed"].detail
    back = phases["recovered"].measured
    assert "recovered_after_s" in back and "blocking_back_after_s" in back, phases["recovered"]
    # While it was down, a probe of the target got through, and says the controller was down.
    through = [
        r
        for r in opened["results"]
        if r.get("service") == "telegram-web"
        and r.get("ok")
        and "controller down" in str(r.get("fault"))
    ]
    assert through, "no probe of the blocked target got through the bypass"
    assert leftovers(opened["run_dir"]) == []


def test_the_controller_listens_on_the_runs_loopback_only(opened: dict[str, Any]) -> None:
    iso = opened["isolation"]
    # ss -Hltn: State Recv-Q Send-Q Local:Port Peer:Port
    assert iso["listening"][3].startswith("127.0.0.1:"), iso["listening"]
    assert iso["listening"].count("LISTEN") == 1, "one socket, not also on 0.0.0.0 or [::]"
    # From a subscriber's namespace neither its loopback nor its own address has it.
    assert "rc=0" not in iso["from_sub"], iso["from_sub"]


def test_the_control_socket_is_root_only(opened: dict[str, Any]) -> None:
    iso = opened["isolation"]
    assert iso["mode"] == 0o600 and iso["uid"] == 0
    assert iso["nobody_rc"] == 13, "another user could connect to the control socket"


# --- SIGTERM and Ctrl-C at a random moment of `tspulab run` -----------------------------------


def _start_run(tmp_path: Path) -> subprocess.Popen[str]:
    scenario = tmp_path / "faults-signal.yaml"
    scenario.write_text(
        scenario_text(["{at: +3s, kind: kill-controller, for: 30s}"], end_s=40, every_s=2)
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tspulab.cli", "run", str(scenario), "--runs-dir",
         str(tmp_path / "runs")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, cwd=REPO,
    )  # fmt: skip


def _results_lines(tmp_path: Path) -> list[str]:
    found = sorted((tmp_path / "runs").glob("faults-*/results.jsonl"))
    lines = found[0].read_text().splitlines() if found else []
    return [line for line in lines if line.endswith("}")]  # not one being written


def test_sigterm_and_ctrl_c_at_random_moments_end_the_run_with_its_report(
    tmp_path: Path,
) -> None:
    """`kill PID` (SIGTERM to the runner) and a terminal's Ctrl-C (SIGINT to its process group),
    each after a random number of results (0: during bring-up), two runs side by side."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    runs = {
        signal.SIGTERM: (tmp_path / "sigterm", rng.randint(0, 12)),
        signal.SIGINT: (tmp_path / "sigint", rng.randint(0, 12)),
    }
    procs = {}
    for signum, (folder, _) in runs.items():
        folder.mkdir()
        procs[signum] = _start_run(folder)
    before: dict[int, list[str]] = {}
    deadline = time.monotonic() + 120
    while len(before) < len(runs) and time.monotonic() < deadline:
        for signum, (folder, wanted) in runs.items():
            if signum in before:
                continue
            lines = _results_lines(folder)
            # 0: during bring-up (Open vSwitch is starting: the lab's signal handling is on)
            up = wanted > 0 or any((folder / "runs").glob("faults-*/ovs"))
            if up and len(lines) >= wanted:
                before[signum] = lines
                if signum == signal.SIGINT:
                    os.killpg(procs[signum].pid, signal.SIGINT)  # the whole process group
                else:
                    procs[signum].send_signal(signal.SIGTERM)  # `kill PID`
        time.sleep(0.05)
    for signum, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        folder, wanted = runs[signum]
        name = "sigterm" if signum == signal.SIGTERM else "sigint"
        context = f"{name} after {wanted} result(s), seed {seed}: {err[-2000:]}"
        assert signum in before, context
        assert proc.returncode == 130, context
        assert f"report: {folder}" in err, context  # tspulab run says where the report is
        run_dir = next((folder / "runs").glob("faults-*"))
        records, problems = read_faults(run_dir / FAULTS_FILE)
        assert problems == [], context
        ended = [r for r in records if r.fault == name]
        assert len(ended) == 1 and "interrupted" in ended[0].detail, (records, context)
        page = (run_dir / "report.html").read_text()
        assert "<h2>Faults</h2>" in page and name.upper() in page, context
        after = (run_dir / "results.jsonl").read_text().splitlines()
        assert after[: len(before[signum])] == before[signum], f"a result was changed: {context}"
        assert all(json.loads(line) for line in after), context
        assert leftovers(run_dir) == [], context
