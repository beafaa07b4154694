"""Where a run's controller listens for control commands (registry pushes, profile changes)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path


def control_socket_path(run_dir: Path) -> Path:
    """The controller's control socket: a short path (AF_UNIX allows 108 bytes, and run
    directories under pytest's temporary folders are longer), named after the run directory."""
    digest = hashlib.blake2b(str(run_dir).encode(), digest_size=6).hexdigest()
    return Path(tempfile.gettempdir()) / f"tspulab-{digest}.sock"
