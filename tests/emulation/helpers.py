"""Running a lab from a test, and checking that a run left nothing behind.

Every lab runs in a sandbox of its own (`tspulab.lab.sandbox`): the test body that drives it is a
module-level function run there with `in_sandbox`, and its return value (or its failed assertion,
with the traceback from inside) comes back here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tspulab.lab.record import RunRecord, remaining
from tspulab.lab.sandbox import run_in_sandbox

T = TypeVar("T")

#: No lab test may hang the suite.
LAB_TIMEOUT_S = 600.0


def silent(*_args: object, **_kwargs: object) -> None:
    """A `log=` for runs whose progress the test does not print (picklable, unlike a lambda)."""


def in_sandbox(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a new run sandbox; its result, or its exception, comes back."""
    return run_in_sandbox(fn, *args, timeout_s=LAB_TIMEOUT_S, **kwargs)


def leftovers(run_dir: Path) -> list[str]:
    """Everything of the run still there (tspulab.lab.record.remaining)."""
    return remaining(run_dir)


def sandbox_gone(run_dir: Path) -> bool:
    """The run was sealed in a sandbox, and no process of the machine is in its namespaces."""
    sandboxes = [e for e in RunRecord(run_dir).entries() if e["kind"] == "sandbox"]
    return bool(sandboxes) and remaining(run_dir) == []
