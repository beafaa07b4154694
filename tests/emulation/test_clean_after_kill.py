"""SIGKILL of `tspulab run` at random moments (bring-up, probing, teardown): the kernel ends the
run's sandbox, so nothing of it is left in the root namespace without any `tspulab clean`, and
what was measured before the kill is intact."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from tests.emulation.helpers import leftovers
from tspulab.lab.record import RunRecord, describe_process, processes_in_namespace
from tspulab.lab.sandbox import namespace_ids

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def _sandbox_namespaces(runner: subprocess.Popen[bytes]) -> dict[str, int] | None:
    """The namespaces of the runner's sandbox: its child (unshare) has PID 1 as only child."""
    try:
        for child in Path(f"/proc/{runner.pid}/task/{runner.pid}/children").read_text().split():
            grand = Path(f"/proc/{child}/task/{child}/children").read_text().split()
            if grand:
                ids = namespace_ids(grand[0])
                if ids["net"] != namespace_ids()["net"]:
                    return ids
    except OSError:
        return None
    return None


def _root_interfaces() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def _record_text(run_dir: Path | None) -> str:
    path = run_dir / "made.jsonl" if run_dir else None
    return path.read_text() if path and path.exists() else ""


def _results(run_dir: Path) -> list[str]:
    path = run_dir / "results.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def _kill_at(moment: str, runs: Path, rng: random.Random) -> dict[str, object]:
    before = _root_interfaces()
    runner = subprocess.Popen(
        [sys.executable, "-m", "tspulab.cli", "run", str(DEMO), "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    namespaces = None
    deadline = time.monotonic() + 120
    run_dir: Path | None = None
    while time.monotonic() < deadline:
        namespaces = namespaces or _sandbox_namespaces(runner)
        dirs = sorted(runs.glob("demo-*"))
        run_dir = dirs[-1] if dirs else None
        lines = _results(run_dir) if run_dir else []
        if moment == "bring-up" and namespaces and run_dir:
            time.sleep(rng.uniform(0.0, 1.5))  # OVS, controller, Mininet hosts, servers
            break
        if moment == "probing" and len(lines) >= rng.randint(1, 6):
            break
        if moment == "teardown" and '"teardown"' in _record_text(run_dir):
            time.sleep(rng.uniform(0.0, 0.5))  # servers, Mininet, controller, OVS going down
            break
        time.sleep(0.02)
    assert namespaces is not None and run_dir is not None, f"{moment}: the run never came up"
    runner.kill()
    runner.wait()
    # The kernel ends the PID namespace's processes; give it a moment, nothing more.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        processes_in_namespace(ns, inode) for ns, inode in namespaces.items()
    ):
        time.sleep(0.05)
    mountinfo = Path("/proc/self/mountinfo").read_text()
    listening = subprocess.run(["ss", "-lntuxp"], capture_output=True, text=True).stdout
    survivors = {
        f"{pid} {describe_process(pid)} in {ns}"
        for ns, inode in namespaces.items()
        for pid in processes_in_namespace(ns, inode)
    }
    return {
        "run_dir": run_dir,
        "processes": sorted(survivors),
        "new_interfaces": sorted(_root_interfaces() - before),
        "mounts": [line for line in mountinfo.splitlines() if str(run_dir) in line],
        "sockets": [line for line in listening.splitlines() if str(run_dir) in line],
        "lines": _results(run_dir),
    }


def test_sigkill_at_five_random_moments_leaves_nothing(tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    moments = ["bring-up", "bring-up", "probing", "probing", "teardown"]
    for n, moment in enumerate(moments):
        for attempt in range(3):
            got = _kill_at(moment, tmp_path / f"runs{n}-{attempt}", rng)
            run_dir = got["run_dir"]
            assert isinstance(run_dir, Path)
            if not RunRecord(run_dir).is_clean():
                break  # the kill landed before teardown finished: the kernel had work to do
        context = f"kill {n} during {moment} (seed {seed})"
        assert got["processes"] == [], context
        assert got["new_interfaces"] == [], context
        assert got["mounts"] == [] and got["sockets"] == [], context
        assert leftovers(run_dir) == [], context
        assert not RunRecord(run_dir).is_clean(), "no clean-up ran: the kernel did it"
        for line in got["lines"]:  # type: ignore[attr-defined]
            json.loads(line)  # every measurement written before the kill is whole
    out = subprocess.run(
        [sys.executable, "-m", "tspulab.cli", "clean", "--runs-dir", str(tmp_path / "runs0-0")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "removed 0 item(s)" in out, out
