"""Where scenario paths point: `data:` into the reference data folder, others beside the file."""

from __future__ import annotations

import os
from pathlib import Path

DATA_PREFIX = "data:"


def _repo_root(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def data_dir(scenario_path: Path) -> Path:
    """The reference data folder: $TSPULAB_DATA_DIR, else <repo>/../shared/data."""
    env = os.environ.get("TSPULAB_DATA_DIR")
    if env:
        return Path(env)
    root = _repo_root(scenario_path.resolve().parent)
    return (root / ".." / "shared" / "data").resolve() if root else Path("../shared/data").resolve()


def resolve_data_path(raw: str, scenario_path: Path) -> Path:
    """`data:REL` against the reference data folder, else relative to the scenario's folder."""
    if raw.startswith(DATA_PREFIX):
        return data_dir(scenario_path) / raw.removeprefix(DATA_PREFIX)
    return scenario_path.parent / raw
