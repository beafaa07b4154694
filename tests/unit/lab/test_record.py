"""Cleanup ends exactly the recorded processes (and their groups), never a recycled PID."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tspulab.lab.record import RunRecord, clean_runs, cleanup, process_alive


def _spawn_group() -> subprocess.Popen[bytes]:
    # A session leader with a child, like nginx's master and worker.
    return subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True)


def test_cleanup_ends_recorded_group_only(tmp_path: Path) -> None:
    ours = _spawn_group()
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        time.sleep(0.2)
        record = RunRecord(tmp_path)
        record.process(ours.pid, "test server", group_leader=True)
        removed = cleanup(record)
        ours.wait(timeout=5)
        assert removed and "test server" in removed[0]
        assert process_alive(bystander.pid)
        assert record.is_clean()
    finally:
        bystander.kill()
        bystander.wait()


def test_recycled_pid_is_not_signalled(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record = RunRecord(tmp_path)
        # Same PID but another start time: what a recycled PID looks like to the record.
        record.path.write_text(
            json.dumps({"kind": "process", "pid": victim.pid, "pgid": victim.pid,
                        "start": 1, "name": "old", "t": 0}) + "\n"
        )  # fmt: skip
        assert cleanup(record) == []
        assert process_alive(victim.pid)
    finally:
        victim.kill()
        victim.wait()


def test_torn_last_line_is_skipped_and_clean_runs_finds_unclean(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "demo-1"
    record = RunRecord(run)
    record.link("tspulab-nonexistent0")
    with record.path.open("a") as f:
        f.write('{"kind": "proc')  # killed mid-write
    assert len(record.entries()) == 1
    assert clean_runs(str(tmp_path), []) == 0
    assert record.is_clean()
    assert clean_runs(str(tmp_path), []) == 0
    assert "nothing to clean" in capsys.readouterr().out
