"""A record of everything a run makes, so cleanup removes exactly that and nothing else.

Every process, root-namespace interface and directory a run creates is appended to
`<run dir>/made.jsonl` *before* or right after it exists, one JSON object a line, flushed. After a
SIGKILL of the runner the file is still there, and `tspulab clean` replays it backwards:

- processes are identified by PID *and* start time (field 22 of /proc/PID/stat), so a recycled PID
  is never signalled; the whole process group is ended, because servers such as nginx fork workers
  that outlive a killed master;
- interfaces are deleted by name only if they still exist;
- nothing is ever matched by pattern: no Mininet-wide clean-up, no kill by process name.

A run directory whose record ends with a `clean` entry has been cleaned.

Runs are sealed in sandboxes of their own (`tspulab.lab.sandbox`): entries made inside one carry
the inode of its network namespace (`ns`). Their processes, interfaces, nftables tables and private
/tmp files live and die with that sandbox, so for them the record is a check, not a to-do list:
the run is left behind only while a process of the machine is still in that namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tspulab.lab.sandbox import (
    RUNNER_ENV,
    SANDBOX_ID_ENV,
    current_sandbox,
    processes_in,
    sandbox_processes,
)

RECORD_NAME = "made.jsonl"


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _process_group(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[2])


@dataclass
class RunRecord:
    """Append-only log of what one run made."""

    run_dir: Path

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / RECORD_NAME

    def _append(self, entry: dict[str, Any]) -> None:
        entry["t"] = time.time()
        sandbox = current_sandbox()
        if sandbox is not None:
            entry["ns"] = sandbox["net"]
        with self.path.open("a+") as f:
            # After a kill mid-write the last line may be torn: start on a fresh line.
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(f.tell() - 1)
                torn = f.read(1) != "\n"
            else:
                torn = False
            f.write(("\n" if torn else "") + json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def process(self, pid: int, name: str, *, group_leader: bool = False) -> None:
        """Record a process that this run started.

        `group_leader=True` says the process makes itself a session leader (setsid: mnexec -d,
        daemons, start_new_session), so its process group is its PID even if, this instant, it
        has not called setsid yet; cleanup then ends the whole group.
        """
        self._append(
            {
                "kind": "process",
                "pid": pid,
                "pgid": pid if group_leader else None,
                "start": process_start_time(pid),
                "name": name,
            }
        )

    def link(self, name: str) -> None:
        """Record a root-namespace network interface (switch ports, switch-to-switch veths)."""
        self._append({"kind": "link", "name": name})

    def nft_table(self, family: str, name: str) -> None:
        """Record an nftables table the run (its controller) creates in the root namespace."""
        self._append({"kind": "nft-table", "family": family, "name": name})

    def file(self, path: Path) -> None:
        """Record a file the run makes outside its directory (e.g. the control socket)."""
        self._append({"kind": "file", "path": str(path)})

    def note(self, **fields: Any) -> None:
        """Record a fact about the run (not something to remove): ports, versions, capabilities."""
        self._append({"kind": "note", **fields})

    def sandbox(self) -> None:
        """Record the sandbox the run is sealed in, and the process that started it (outside),
        so `tspulab clean` tells a run in progress from one whose runner died."""
        ids = current_sandbox()
        if ids is None:
            return
        runner = os.environ.get(RUNNER_ENV, "")
        pid, _, start = runner.partition(":")
        self._append(
            {
                "kind": "sandbox",
                "namespaces": ids,
                "id": os.environ.get(SANDBOX_ID_ENV),
                "runner_pid": int(pid) if pid else None,
                "runner_start": int(start) if start else None,
            }
        )

    def mark_clean(self, removed: list[str]) -> None:
        self._append({"kind": "clean", "removed": removed})

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # A SIGKILL mid-write leaves at most one torn line at the end; skip it.
                continue
        return out

    def is_clean(self) -> bool:
        entries = self.entries()
        return bool(entries) and entries[-1]["kind"] == "clean"


def _group_members(pgid: int, not_before: int | None) -> list[int]:
    """PIDs in process group `pgid` started no earlier than the recorded leader (so not a reuse)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if _process_group(pid) != pgid or not process_alive(pid):
            continue
        start = process_start_time(pid)
        if not_before is not None and (start is None or start < not_before):
            continue
        members.append(pid)
    return members


def _end_processes(pids: list[int], grace_s: float = 2.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(process_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def processes_in_namespace(kind: str, inode: int) -> list[int]:
    """Host PIDs of the processes in the namespace `kind` ("net", "mnt", "pid") with this inode."""
    return processes_in(kind, inode)


def _sealed(entry: dict[str, Any]) -> bool:
    """Made inside a sandbox, and not a file outside its private /tmp."""
    if "ns" not in entry:
        return False
    return entry["kind"] != "file" or str(entry["path"]).startswith("/tmp/")


def _sandboxes(entries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Network-namespace inode -> the sandbox entry (namespaces, runner) of each sandbox."""
    out: dict[int, dict[str, Any]] = {}
    for entry in entries:
        if entry["kind"] == "sandbox":
            out[entry["namespaces"]["net"]] = entry
        elif "ns" in entry:
            out.setdefault(entry["ns"], {"namespaces": {"net": entry["ns"]}})
    return out


def describe_process(pid: int) -> str:
    """`comm (state)` of a process, for messages about what is left."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "(gone)"
    return f"{stat[stat.index('(') + 1 : stat.rindex(')')]} ({stat[stat.rindex(')') + 2]})"


def _sandbox_pids(sandbox: dict[str, Any], settle_s: float = 2.0) -> list[int]:
    """Processes still in the sandbox's namespaces. A sandbox whose PID 1 died a moment ago is
    still being ended by the kernel: give that `settle_s` before calling anything left."""
    deadline = time.monotonic() + settle_s
    while True:
        found = sandbox_processes(sandbox["namespaces"], sandbox.get("id"))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def remaining(run_dir: Path) -> list[str]:
    """What of a run is still there: a process in its sandbox's namespaces; recorded processes
    alive (same PID and start time), links, nftables tables and files of unsealed entries. Empty
    after a complete teardown."""
    left = []
    entries = RunRecord(run_dir).entries()
    for inode, sandbox in _sandboxes(entries).items():
        pids = _sandbox_pids(sandbox)
        if pids:
            described = ", ".join(f"{pid} {describe_process(pid)}" for pid in pids[:5])
            left.append(f"sandbox net:{inode}: {len(pids)} process(es): {described}")
    for entry in entries:
        kind = entry["kind"]
        if _sealed(entry):
            continue
        if kind == "process":
            pid = entry["pid"]
            if process_start_time(pid) == entry["start"] and process_alive(pid):
                left.append(f"process {entry['name']} ({pid})")
        elif kind == "link" and _link_exists(entry["name"]):
            left.append(f"link {entry['name']}")
        elif kind == "file" and Path(entry["path"]).exists():
            left.append(f"file {entry['path']}")
        elif kind == "nft-table":
            listed = subprocess.run(
                ["nft", "list", "table", entry["family"], entry["name"]],
                check=False, capture_output=True,
            )  # fmt: skip
            if listed.returncode == 0:
                left.append(f"nft table {entry['name']}")
    return left


def cleanup(record: RunRecord) -> list[str]:
    """Remove what `record` lists, newest first. Returns a description of what was removed."""
    removed: list[str] = []
    entries = record.entries()
    here = current_sandbox()
    for inode, sandbox in _sandboxes(entries).items():
        if here is not None and here["net"] == inode:
            continue  # the run's own teardown, inside its sandbox: the kernel ends the rest
        pids = _sandbox_pids(sandbox)
        runner, start = sandbox.get("runner_pid"), sandbox.get("runner_start")
        if pids and runner is not None and process_start_time(runner) == start:
            # Its runner lives: a run in progress, not a leftover.
            removed.append(f"sandbox net:{inode} still running (runner pid {runner}): left alone")
            continue
        if pids:
            _end_processes(pids, grace_s=1.0)
            removed.append(f"sandbox net:{inode}: ended {len(pids)} process(es)")
    for entry in reversed(entries):
        kind = entry["kind"]
        if _sealed(entry):
            continue
        if kind == "process":
            pid, start, pgid = entry["pid"], entry.get("start"), entry.get("pgid")
            now_start = process_start_time(pid)
            if now_start is not None and now_start != start:
                # The PID was recycled. Linux hands out a PID again only once no process group
                # uses it either, so nothing of ours can remain in that group.
                continue
            victims = [pid] if now_start is not None and process_alive(pid) else []
            if pgid is not None and pgid == pid:
                victims += [p for p in _group_members(pgid, start) if p not in victims]
            if victims:
                _end_processes(victims)
                removed.append(f"process {entry['name']} pid {','.join(map(str, victims))}")
        elif kind == "nft-table":
            gone = subprocess.run(
                ["nft", "delete", "table", entry["family"], entry["name"]],
                check=False, capture_output=True,
            )  # fmt: skip
            if gone.returncode == 0:
                removed.append(f"nft table {entry['family']} {entry['name']}")
        elif kind == "file" and Path(entry["path"]).exists():
            Path(entry["path"]).unlink(missing_ok=True)
            removed.append(f"file {entry['path']}")
        elif kind == "link" and _link_exists(entry["name"]):
            subprocess.run(["ip", "link", "del", entry["name"]], check=False, capture_output=True)
            removed.append(f"link {entry['name']}")
    record.mark_clean(removed)
    return removed


def iter_unclean_runs(runs_dir: Path) -> Iterator[RunRecord]:
    if not runs_dir.is_dir():
        return
    for run_dir in sorted(runs_dir.iterdir()):
        record = RunRecord.__new__(RunRecord)
        record.run_dir = run_dir
        record.path = run_dir / RECORD_NAME
        if record.path.exists() and not record.is_clean():
            yield record


def clean_runs(runs_dir: str, runs: list[str]) -> int:
    """`tspulab clean`: clean the given run directories, or every unclean one under runs_dir."""
    records = (
        [RunRecord(Path(r)) for r in runs] if runs else list(iter_unclean_runs(Path(runs_dir)))
    )
    if not records:
        print(f"nothing to clean under {runs_dir}")
        return 0
    for record in records:
        removed = cleanup(record)
        print(f"{record.run_dir}: removed {len(removed)} item(s)")
        for item in removed:
            print(f"  {item}")
    return 0
