"""Where scenario paths point: `data:` into the reference data folder, others beside the file.

The reference data ships with the project in ``data/`` (provenance and licences in
``data/README.md``); ``$TSPULAB_DATA_DIR`` overrides it, e.g. for a larger private set.

A ``data:`` path names a file *inside* that folder: a scenario someone else wrote must not read
``data:../../../../etc/shadow`` through it, so an absolute ``data:`` path or one whose ``..``
climbs out is refused (checked on the text, before any file is touched). A path without
``data:`` is the user's own: absolute, or relative to the scenario's folder, it stays allowed,
and one that leads outside the scenario's folder is reported as a note (`outside_note`) so that
``tspulab validate`` shows what a file will read.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

DATA_PREFIX = "data:"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The clone this package runs from (setup.sh installs it editable)."""

SHIPPED_DATA = PROJECT_ROOT / "data"


def data_dir(scenario_path: Path | None = None) -> Path:
    """The reference data folder: $TSPULAB_DATA_DIR, else the project's own ``data/``.

    ``scenario_path`` is accepted for callers that resolve relative to a scenario; the shipped
    folder does not depend on it.
    """
    env = os.environ.get("TSPULAB_DATA_DIR")
    if env:
        return Path(env)
    return SHIPPED_DATA


def data_path_problem(raw: str) -> str | None:
    """Why a ``data:`` path is refused (absolute, or ``..`` leading out of the data folder); None
    when it stays inside, or when `raw` is not a ``data:`` path."""
    if not raw.startswith(DATA_PREFIX):
        return None
    rel = raw.removeprefix(DATA_PREFIX)
    if rel.startswith(("/", "\\")):
        return (
            f"'{raw}': a data: path is relative to the data folder; "
            "an absolute path of your own is written without 'data:'"
        )
    normal = posixpath.normpath(rel.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return f"'{raw}' leads out of the data folder ('..'); data: paths stay inside it"
    return None


def resolve_data_path(raw: str, scenario_path: Path) -> Path:
    """`data:REL` against the reference data folder, else relative to the scenario's folder.

    ValueError for a ``data:`` path that `data_path_problem` refuses.
    """
    if raw.startswith(DATA_PREFIX):
        problem = data_path_problem(raw)
        if problem is not None:
            raise ValueError(problem)
        return data_dir(scenario_path) / raw.removeprefix(DATA_PREFIX)
    return scenario_path.parent / raw


def outside_note(raw: str, scenario_path: Path) -> str | None:
    """A note for a path of the user's own that reads outside the scenario's folder (absolute,
    or climbing out with ``..``); None for ``data:`` paths and paths inside the folder."""
    if raw.startswith(DATA_PREFIX):
        return None
    resolved = Path(os.path.abspath(resolve_data_path(raw, scenario_path)))
    folder = Path(os.path.abspath(scenario_path.parent))
    if Path(raw).is_absolute():
        return f"reads {resolved}, an absolute path of your own"
    if not resolved.is_relative_to(folder):
        return f"reads {resolved}, outside the scenario's folder ({folder})"
    return None
