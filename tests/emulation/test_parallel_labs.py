"""Several labs at once on one machine, each in its own sandbox, each with its own verdicts; one
killed does not disturb the others; and nothing inside a lab reaches the root namespace."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.emulation.helpers import LAB_TIMEOUT_S, leftovers, silent
from tspulab.lab.record import RunRecord, processes_in_namespace
from tspulab.lab.sandbox import start_sandbox
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

#: (scenario, subscriber, service, expected outcome) probed before and after the third lab dies
EXPECTED = {
    "demo": [("sub1", "telegram-web", "timeout"), ("sub1", "evernote", "ok")],
    "tspu-2022-sni": [("sub1", "twitter", "reset"), ("sub1", "yandex", "ok")],
}


def _probe_all(live: LiveLab, name: str) -> list[tuple[str, str]]:
    return [
        (service, live.probe(sub, service, timeout_s=2).outcome)
        for sub, service, _ in EXPECTED[name]
    ]


def _lab_until(name: str, runs: Path, go: Path) -> dict[str, object]:
    """Bring a lab up, probe, wait for `go` (the test kills the third lab meanwhile), probe again."""
    with LiveLab(load_scenario(SCENARIOS / f"{name}.yaml"), runs, log=silent) as live:
        (runs / "up").write_text("")
        first = _probe_all(live, name)
        deadline = time.monotonic() + 300
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = _probe_all(live, name)
    return {"first": first, "second": second, "run_dir": live.run_dir}


def _victim(runs: Path) -> None:
    with LiveLab(load_scenario(SCENARIOS / "hosting-2025.yaml"), runs, log=silent) as live:
        (runs / "up").write_text("")
        while True:
            live.probe("sub1", "yandex", timeout_s=2)


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_three_labs_at_once_and_one_killed(tmp_path: Path) -> None:
    go = tmp_path / "go"
    boxes = {}
    for name in EXPECTED:
        (tmp_path / name).mkdir()
        boxes[name] = start_sandbox(_lab_until, name, tmp_path / name, go)
    (tmp_path / "victim").mkdir()
    victim = start_sandbox(_victim, tmp_path / "victim")
    for name in (*EXPECTED, "victim"):
        _wait_for(tmp_path / name / "up", 400)
    _wait_for(next((tmp_path / "victim").glob("*/results.jsonl")), 60)
    victim_dir = next((tmp_path / "victim").glob("hosting-2025-*"))
    sandbox = next(e for e in RunRecord(victim_dir).entries() if e["kind"] == "sandbox")
    victim.kill(wait=True)
    go.write_text("")
    results = {name: box.wait(LAB_TIMEOUT_S) for name, box in boxes.items()}
    for name, got in results.items():
        expected = [(service, outcome) for _, service, outcome in EXPECTED[name]]
        assert got["first"] == expected, name
        assert got["second"] == expected, f"{name} after another lab was killed"
        assert leftovers(got["run_dir"]) == []  # type: ignore[arg-type]
    assert all(processes_in_namespace(k, v) == [] for k, v in sandbox["namespaces"].items())
    assert leftovers(victim_dir) == []


# TEST-NET-2 (RFC 5737): owned by no lab host and routed nowhere (this machine's own network uses
# TEST-NET-1, so that one would be seen in the root namespace for reasons of its own).
REAL_WORLD = "198.51.100.7"


def _reach_outside(runs: Path) -> dict[str, object]:
    with LiveLab(load_scenario(SCENARIOS / "demo.yaml"), runs, log=silent) as live:
        sub = live.host("sub1")
        started = time.monotonic()
        ping = sub.cmd(f"ping -c 1 -W 2 {REAL_WORLD}; echo rc=$?")
        ping_s = time.monotonic() - started
        started = time.monotonic()
        curl = sub.cmd(f"curl -sS -m 5 http://{REAL_WORLD}/ -o /dev/null; echo rc=$?")
        curl_s = time.monotonic() - started
        port = next(e["controller_port"] for e in live.record.entries() if "controller_port" in e)
        from tspulab.scenario.tspu_config import control_socket_path

        socket_mode = control_socket_path(live.run_dir).stat().st_mode & 0o777
        socket_seen_outside = str(control_socket_path(live.run_dir))
    return {"ping": ping, "ping_s": ping_s, "curl": curl, "curl_s": curl_s, "port": port,
            "run_dir": live.run_dir, "socket_mode": socket_mode,
            "socket_path": socket_seen_outside}  # fmt: skip


def test_nothing_of_a_lab_reaches_the_root_namespace(tmp_path: Path) -> None:
    # Watch every interface of the root namespace for the lab's probe while it runs.
    capture = subprocess.Popen(
        ["tcpdump", "-i", "any", "-n", "-l", "-c", "1", f"host {REAL_WORLD}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        box = start_sandbox(_reach_outside, tmp_path)
        got = box.wait(LAB_TIMEOUT_S)
    finally:
        capture.terminate()
        seen, _ = capture.communicate(timeout=10)
    assert "rc=0" not in str(got["ping"]) and "rc=0" not in str(got["curl"])
    # The border router has no route there: unreachable at once, not a timeout.
    assert float(got["curl_s"]) < 3, got["curl"]
    assert seen.strip() == "", "the root namespace saw a packet of the lab"
    listening = subprocess.run(["ss", "-lntux"], capture_output=True, text=True).stdout
    assert f":{got['port']} " not in listening, "the controller listens in the sandbox only"
    assert str(got["run_dir"]) not in listening
    # The control socket: mode 0600, in the run's private /tmp (absent from the root's /tmp).
    assert got["socket_mode"] == 0o600
    assert not Path(str(got["socket_path"])).exists()
    assert str(got["socket_path"]) not in listening
