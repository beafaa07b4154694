"""Each run sealed in its own namespaces (tspulab.lab.sandbox): what a sandbox gives a job, what
is left after SIGKILL of its runner (nothing), and that nothing of a lab reaches the root
namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.emulation.helpers import in_sandbox
from tspulab.dpi.yamlload import ScenarioError
from tspulab.lab.record import processes_in_namespace
from tspulab.lab.sandbox import (
    RemoteError,
    SandboxError,
    current_sandbox,
    namespace_ids,
    require_sandbox,
    run_in_sandbox,
    sandbox_processes,
    start_sandbox,
)
from tspulab.scenario.schema import load_scenario


def _inside(shared: Path) -> dict[str, object]:
    (shared / "written-inside").write_text("kept")
    Path("/tmp/private-file").write_text("gone with the sandbox")
    return {
        "pid": os.getpid(),
        "sandbox": current_sandbox(),
        "links": sorted(os.listdir("/sys/class/net")),
        "resolv": Path("/etc/resolv.conf").read_text(),
        "tmp": sorted(os.listdir("/tmp")),
    }


def test_a_job_runs_in_namespaces_of_its_own(tmp_path: Path) -> None:
    outside = namespace_ids()
    got = run_in_sandbox(_inside, tmp_path)
    sandbox = got["sandbox"]
    assert isinstance(sandbox, dict)
    assert all(sandbox[ns] != outside[ns] for ns in ("net", "mnt", "pid"))
    assert got["pid"] == 2, "PID 1 is the supervisor; the job is its child"
    assert got["links"] == ["lo"], "a new network namespace: loopback only"
    assert (tmp_path / "written-inside").read_text() == "kept", "shared paths are bound in"
    assert not Path("/tmp/private-file").exists(), "the sandbox's /tmp is its own"
    assert all(processes_in_namespace(ns, sandbox[ns]) == [] for ns in ("net", "mnt", "pid"))


def _fails() -> None:
    raise ValueError("raised inside")


def test_an_exception_comes_back_with_its_traceback() -> None:
    with pytest.raises(ValueError, match="raised inside") as info:
        run_in_sandbox(_fails)
    assert any("in the sandbox" in note for note in getattr(info.value, "__notes__", []))


def test_a_lab_refuses_to_start_outside_a_sandbox() -> None:
    with pytest.raises(SandboxError, match="run_in_sandbox"):
        require_sandbox("a lab")


def _spawn_daemon_and_wait(pidfile: Path) -> None:
    # A daemon that detaches (new session, reparented to PID 1), as ovsdb-server does.
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    pidfile.write_text(f"{proc.pid} {namespace_ids()['pid']} {namespace_ids()['net']}")
    time.sleep(600)


def test_sigkill_of_the_runner_ends_every_process_of_the_sandbox(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon"
    runner = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from tspulab.lab.sandbox import run_in_sandbox; "
         "from tests.emulation.test_sandbox import _spawn_daemon_and_wait; "
         f"run_in_sandbox(_spawn_daemon_and_wait, Path({str(pidfile)!r}))"],
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not pidfile.exists():
        time.sleep(0.05)
    _, pid_ns, net_ns = (int(x) for x in pidfile.read_text().split())
    assert processes_in_namespace("pid", pid_ns), "the sandbox is up"
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_in_namespace("pid", pid_ns):
        time.sleep(0.05)
    assert processes_in_namespace("pid", pid_ns) == []
    assert processes_in_namespace("net", net_ns) == []


def test_a_sandbox_that_hangs_is_killed_at_its_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(SandboxError, match="killed"):
        run_in_sandbox(time.sleep, 60, timeout_s=2)
    assert time.monotonic() - started < 15


def test_sigterm_to_the_runner_reaches_the_job(tmp_path: Path) -> None:
    """SIGTERM of `tspulab run` asks the job to tear down (it becomes KeyboardInterrupt there)."""
    marker = tmp_path / "torn-down"
    runner = subprocess.Popen(
        [sys.executable, "-c",
         "from pathlib import Path; from tspulab.lab.sandbox import run_in_sandbox; "
         "from tests.emulation.test_sandbox import _wait_for_interrupt; "
         f"run_in_sandbox(_wait_for_interrupt, Path({str(marker)!r}))"],
        cwd=Path(__file__).resolve().parents[2], stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=30)
    assert marker.read_text() == "interrupted"


def _wait_for_interrupt(marker: Path) -> None:
    from tspulab.scenario.labrun import _on_sigterm

    signal.signal(signal.SIGTERM, _on_sigterm)
    (marker.parent / "ready").write_text("")
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        marker.write_text("interrupted")
        raise


def test_in_sandbox_helper_passes_keywords(tmp_path: Path) -> None:
    assert in_sandbox(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]


class _Picky(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def _raises_picky() -> None:
    raise _Picky(1, 2)


def test_an_exception_that_cannot_travel_comes_back_as_its_text() -> None:
    with pytest.raises(RemoteError, match=r"(?s)_Picky .*1 and 2"):
        run_in_sandbox(_raises_picky)


def test_a_scenario_error_comes_back_as_itself_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nservices:\n  - name: x\n    role: target\n    address: nowhere\n")
    with pytest.raises(ScenarioError) as info:
        run_in_sandbox(load_scenario, bad)
    assert info.value.errors and all(e.file.endswith("bad.yaml") for e in info.value.errors)
    assert f"{bad}:5:5: services[0].address: 'nowhere' is not an IPv4" in str(info.value)
    assert any("in the sandbox" in note for note in getattr(info.value, "__notes__", []))


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_a_sandbox_is_known_by_its_token_not_only_by_its_namespace_inodes() -> None:
    """The kernel gives a freed namespace's inode to the next namespace made (the next sandbox
    often gets the same three), so a record's check must not take a newer sandbox for its own:
    the token in the environment of the PID namespace's init tells them apart."""
    box = start_sandbox(_sleep, 30.0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not box.processes():
            time.sleep(0.05)
        ours = box.processes()
        assert ours and box.token
        assert sandbox_processes(box.namespaces, box.token) == ours
        assert sandbox_processes(box.namespaces, "a-newer-sandbox") == [], (
            "same inodes, another init: not ours"
        )
    finally:
        box.kill(wait=True)
    assert box.processes() == []
