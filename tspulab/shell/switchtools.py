"""The switch-side tools the shell runs in the lab's namespace: ovs-ofctl and tcpdump."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def ovs_ofctl(command: str, switch: str) -> str:
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", command, switch],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def start_tcpdump(interface: str, path: Path, log: Path) -> subprocess.Popen[bytes]:
    """tcpdump writing every packet of `interface` to `path` as it arrives; returns once it is
    listening (a capture that starts late misses the handshakes the user wants to see)."""
    start = log.stat().st_size if log.exists() else 0
    proc = subprocess.Popen(
        # --immediate-mode: without it packets wait in the kernel's ring for up to a second and
        # a capture stopped right after a probe holds none of them
        ["tcpdump", "-i", interface, "--immediate-mode", "-U", "-s", "0", "-w", str(path)],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "listening" not in log.read_text()[start:]:
        if proc.poll() is not None:
            raise RuntimeError(f"tcpdump on {interface} exited: see {log}")
        time.sleep(0.05)
    return proc
