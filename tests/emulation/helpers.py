"""Checks that a run left nothing behind, read from its own record."""

from __future__ import annotations

from pathlib import Path

from tspulab.lab.record import RunRecord, process_alive, process_start_time


def leftovers(run_dir: Path) -> list[str]:
    """Recorded processes still alive (same PID and start time) and recorded links still present."""
    left = []
    for entry in RunRecord(run_dir).entries():
        if entry["kind"] == "process":
            pid = entry["pid"]
            if process_start_time(pid) == entry["start"] and process_alive(pid):
                left.append(f"process {entry['name']} ({pid})")
        elif entry["kind"] == "link" and Path(f"/sys/class/net/{entry['name']}").exists():
            left.append(f"link {entry['name']}")
    return left


def mininet_namespaces_gone(run_dir: Path) -> bool:
    """Every Mininet host's namespace was held by its recorded shell; none may remain."""
    shells = [e for e in RunRecord(run_dir).entries()
              if e["kind"] == "process" and e["name"].startswith("mininet host")]  # fmt: skip
    return bool(shells) and all(not Path(f"/proc/{e['pid']}/ns/net").exists()
                                or process_start_time(e["pid"]) != e["start"] for e in shells)  # fmt: skip
