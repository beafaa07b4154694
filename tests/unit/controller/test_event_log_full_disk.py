"""The controller's event log on a full disk: a batch the file system refuses is held and written
once there is room (the runner's ResultWriter does it for both files), not dropped."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from tspulab.controllers.events import EventLog
from tspulab.metrics.results import read_results


def test_events_refused_by_a_full_disk_are_written_later_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "controller-events.jsonl"
    log = EventLog(path)
    log.write("verdict", n=0)
    assert log.flush()
    real_write = os.write
    room = [25]  # bytes the "disk" still takes: the next batch is cut inside a line

    def full_write(fd: int, data: Any) -> int:
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: room[0]]))
        room[0] -= n
        return n

    monkeypatch.setattr(os, "write", full_write)
    caplog.set_level(logging.WARNING, logger="tspulab.controllers")
    for n in (1, 2, 3):
        log.write("verdict", n=n, text="a line longer than the room left")
    assert not log.flush()
    log.write("verdict", n=4)
    assert not log.flush()  # still full: held, in order, behind the first refusal
    assert log.held == 4
    assert [e["n"] for e in read_results(path)] == [0]  # the cut line is not read as an event
    refusals = [r for r in caplog.records if "held until there is room" in r.getMessage()]
    assert len(refusals) == 1, "the refusal is logged once, not at every tick"
    monkeypatch.setattr(os, "write", real_write)  # space again
    assert log.flush()
    assert log.held == 0
    assert [e["n"] for e in read_results(path)] == [0, 1, 2, 3, 4]
    assert path.read_text().count("\n") == 5
    assert any("held events written" in r.getMessage() for r in caplog.records)


def test_an_event_log_without_a_file_writes_nothing(tmp_path: Path) -> None:
    log = EventLog(None)
    log.write("verdict", n=1)
    assert log.flush() and log.held == 0
