"""Where scenario paths point: `data:` into the reference data folder, others beside the file.

The reference data ships with the project in ``data/`` (provenance and licences in
``data/README.md``); ``$TSPULAB_DATA_DIR`` overrides it, e.g. for a larger private set.
"""

from __future__ import annotations

import os
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


def resolve_data_path(raw: str, scenario_path: Path) -> Path:
    """`data:REL` against the reference data folder, else relative to the scenario's folder."""
    if raw.startswith(DATA_PREFIX):
        return data_dir(scenario_path) / raw.removeprefix(DATA_PREFIX)
    return scenario_path.parent / raw
