"""Checks that a run left nothing behind, read from its own record."""

from __future__ import annotations

from pathlib import Path

from tspulab.lab.record import RunRecord, process_start_time, remaining


def leftovers(run_dir: Path) -> list[str]:
    """Everything of the run still there (tspulab.lab.record.remaining)."""
    return remaining(run_dir)


def mininet_namespaces_gone(run_dir: Path) -> bool:
    """Every Mininet host's namespace was held by its recorded shell; none may remain."""
    shells = [e for e in RunRecord(run_dir).entries()
              if e["kind"] == "process" and e["name"].startswith("mininet host")]  # fmt: skip
    return bool(shells) and all(not Path(f"/proc/{e['pid']}/ns/net").exists()
                                or process_start_time(e["pid"]) != e["start"] for e in shells)  # fmt: skip
