"""Faults without a lab: the `faults:` key (the invalid files are tests/scenarios/invalid/faults_*),
the faults.jsonl contract, a results writer on a full disk, the report's section, and the guards of
the injector (fill-disk refuses a large file system)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tspulab.contracts import FaultKind, FaultPhase, FaultRecord, read_faults
from tspulab.lab.faults import FaultError, LabFaults, latest_registry_file
from tspulab.metrics.faults_section import faults_html, recovery_figures
from tspulab.metrics.results import ResultWriter, read_results
from tspulab.scenario.faults import planned_faults
from tspulab.scenario.schema import ScenarioError, load_scenario, load_scenario_text

REPO = Path(__file__).resolve().parents[2]
FAULTS_YAML = REPO / "scenarios" / "faults.yaml"


def _with_faults(items: list[str], clock: str = "") -> str:
    text = FAULTS_YAML.read_text()
    return (
        text[: text.index("\nfaults:")]
        + clock
        + "\nfaults:\n"
        + "".join(f"  - {i}\n" for i in items)
    )


def test_the_shipped_scenario_plans_its_faults_in_time_order() -> None:
    s = load_scenario(FAULTS_YAML)
    planned = planned_faults(s)
    assert [(at, f.kind, cloud) for at, f, cloud in planned] == [
        (5.0, "kill-controller", None),
        (18.0, "kill-service", "gcp"),  # target: evernote, a service: its cloud
        (28.0, "kill-dns", None),
        (38.0, "kill-ovs", None),
    ]
    assert [f.for_s for _, f, _ in planned] == [8.0, 5.0, 5.0, 6.0]


def test_faults_listed_out_of_order_and_back_to_back_are_fine() -> None:
    s = load_scenario_text(
        _with_faults(
            [
                "{at: +20s, kind: kill-dns}",
                "{at: +5s, kind: kill-dns, for: 15s}",  # ends as the next one starts
                "{at: +1s, kind: kill-service, target: gcp, for: 3s}",
                "{at: +2s, kind: kill-service, target: yandex, for: 3s}",  # another cloud
            ]
        ),
        FAULTS_YAML,
    )
    assert [at for at, _, _ in planned_faults(s)] == [1.0, 2.0, 5.0, 20.0]


def test_absolute_fault_times_use_the_clock_start() -> None:
    s = load_scenario_text(
        _with_faults(
            ["{at: 2018-04-16T12:00:30Z, kind: kill-ovs}"],
            clock="\nclock: {start: 2018-04-16T12:00:00Z}\n",
        ),
        FAULTS_YAML,
    )
    assert planned_faults(s)[0][0] == 30.0


def test_every_bad_fault_is_reported_at_once_with_its_line() -> None:
    text = _with_faults(
        [
            "{at: +1s, kind: kill-service}",
            "{at: +1s, kind: kill-dns, target: dns1}",
            "{at: +1s, kind: fill-disk, for: 0s}",
        ]
    )
    first = text.splitlines().index("faults:") + 2  # 1-based line of the first item
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "f.yaml")
    got = str(info.value)
    lines = [line.split(": ", 1)[0] for line in got.splitlines()]
    assert lines == [f"f.yaml:{first}:5", f"f.yaml:{first + 1}:31", f"f.yaml:{first + 2}:32"]


def test_more_than_a_hundred_faults_is_refused() -> None:
    items = [f"{{at: +{i}s, kind: kill-service, target: gcp, for: 1s}}" for i in range(101)]
    with pytest.raises(ScenarioError, match=r"faults: 101 faults; at most 100"):
        load_scenario_text(_with_faults(items), "f.yaml")


# --- faults.jsonl -----------------------------------------------------------------------------


def _record(**kw: Any) -> FaultRecord:
    base: dict[str, Any] = {
        "fault": FaultKind.KILL_CONTROLLER,
        "phase": FaultPhase.OBSERVED,
        "wall_time": 1.0,
        "scenario_t_s": 3.0,
        "detail": "fetches failed",
        "after_s": 0.5,
        "measured": {"stopped_after_s": 0.5},
    }
    return FaultRecord(**{**base, **kw})


def test_fault_records_read_back_as_written_and_a_torn_last_line_is_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "faults.jsonl"
    records = [_record(), _record(phase=FaultPhase.RECOVERED, measured={"restart_s": 2.0})]
    with ResultWriter(path) as writer:
        for r in records:
            writer.write(r.line())
    with path.open("a") as f:
        f.write('{"fault": "kill-ovs", "pha')  # a kill mid-write
    got, problems = read_faults(path)
    assert got == records and problems == []


def test_a_fault_line_that_breaks_the_contract_is_named(tmp_path: Path) -> None:
    path = tmp_path / "faults.jsonl"
    bad = {**_record().line(), "fault": "kill-everything"}
    path.write_text(json.dumps(bad) + "\nnot json\n" + json.dumps(_record().line()) + "\n")
    got, problems = read_faults(path)
    assert len(got) == 1
    assert problems[0].startswith(f"{path}:1: fault:") and problems[1] == f"{path}:2: not JSON"
    assert read_faults(tmp_path / "missing.jsonl") == ([], [])


# --- a full disk ------------------------------------------------------------------------------


def test_a_results_writer_holds_what_a_full_disk_refuses_and_completes_it_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.jsonl"
    refusals: list[int] = []
    writer = ResultWriter(path, on_error=lambda err, held: refusals.append(held))
    writer.write({"n": 0})
    real_write = os.write
    room = [10]  # bytes the "disk" still takes

    def full_write(fd: int, data: Any) -> int:
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: room[0]]))
        room[0] -= n
        return n

    monkeypatch.setattr(os, "write", full_write)
    writer.write({"n": 1, "text": "a line longer than ten bytes"})
    writer.write({"n": 2})
    assert writer.held == 2 and refusals == [1, 2]
    assert isinstance(writer.error, OSError) and writer.error.errno == errno.ENOSPC
    assert read_results(path) == [{"n": 0}]  # a torn line is not read as a result
    monkeypatch.setattr(os, "write", real_write)  # space again
    assert writer.flush()
    writer.close()
    assert writer.held == 0
    assert read_results(path) == [
        {"n": 0},
        {"n": 1, "text": "a line longer than ten bytes"},
        {"n": 2},
    ]
    assert path.read_text().count("\n") == 3


def _fake_live(run_dir: Path) -> Any:
    return SimpleNamespace(run_dir=run_dir)


def test_fill_disk_refuses_a_file_system_with_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSPULAB_FILL_DISK_MAX_MB", "1")
    faults = LabFaults(_fake_live(tmp_path))
    st = os.statvfs(tmp_path)
    if st.f_bfree * st.f_frsize <= 1024 * 1024:
        pytest.skip("the temporary folder's file system is (nearly) full")
    with pytest.raises(
        FaultError, match=r"refused: .* MiB free, more than fill-disk fills \(1 MiB"
    ):
        faults.fill_disk()
    assert not list(tmp_path.iterdir()), "nothing written"
    with pytest.raises(FaultError, match="not filled"):
        faults.free_disk()


def test_a_restarted_controller_gets_the_newest_registry_version(tmp_path: Path) -> None:
    for name in ("registry-isp-0.json", "registry-isp-2.json", "registry-isp-10.json",
                 "registry-isp-x-11.json", "registry-other-12.json"):  # fmt: skip
        (tmp_path / name).write_text("{}")
    assert latest_registry_file(tmp_path, "isp") == tmp_path / "registry-isp-10.json"
    assert latest_registry_file(tmp_path, "isp-x") == tmp_path / "registry-isp-x-11.json"
    assert latest_registry_file(tmp_path, "nobody") is None


# --- the report's section -------------------------------------------------------------------


def test_the_faults_section_lists_records_spreads_and_affected_probes() -> None:
    records = [
        _record(phase=FaultPhase.INJECTED, detail="os-ken controller (pid 9) killed", measured={}),
        _record(measured={"stopped_after_s": 0.2}),
        _record(measured={"stopped_after_s": 0.4}),
        _record(measured={"stopped_after_s": 1.0}),
    ]
    assert recovery_figures(records) == {"kill-controller": {"stopped_after_s": [0.2, 0.4, 1.0]}}
    page = faults_html(records, [], [{"fault": "controller down (killed by SIGKILL)"}] * 2)
    assert "os-ken controller (pid 9) killed" in page
    assert "0.20 / 0.40 / 1.00 s (min / median / max of 3)" in page
    assert "2 probe(s) while: controller down (killed by SIGKILL)" in page
    quiet = faults_html([], [], [{"ok": True}])
    assert "No faults" in quiet
    assert "<script" not in faults_html([_record(detail="<script>x</script>")], [], [])
