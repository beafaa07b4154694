"""The VM tier: build the test VM (cached), boot it once, measure inside, assert here.

Skipped, with the reason, only where qemu cannot run the VM: not root, qemu or debootstrap not
installed (scripts/setup.sh installs both), too little disk for the image, or
TSPULAB_VM_TIER=0 in the environment (a developer's quick run; CI leaves it unset).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("TSPULAB_VM_CACHE", "/var/cache/tspulab-vm"))
#: Where the tier leaves its figures and the guest's run directories (runs/ is not tracked).
OUT = REPO / "runs" / "vm-tier"
#: Limits of each step (the whole tier has to stay under 15 minutes here once the image is
#: cached; a build from nothing adds debootstrap and setup.sh, a few minutes more).
BUILD_TIMEOUT_S = 1500
GUEST_TIMEOUT_S = 840
NEEDED_FREE_GB = 8


def vm_skip_reason() -> str | None:
    if os.environ.get("TSPULAB_VM_TIER") == "0":
        return "VM tier turned off by TSPULAB_VM_TIER=0"
    if os.geteuid() != 0:
        return "the VM tier needs root (debootstrap, chroot, qemu)"
    missing = [t for t in ("qemu-system-x86_64", "debootstrap", "mkfs.ext4") if not shutil.which(t)]
    if missing:
        return (
            f"missing {', '.join(missing)} (scripts/setup.sh installs qemu-system-x86, debootstrap)"
        )
    probe = CACHE if CACHE.exists() else CACHE.parent
    free_gb = shutil.disk_usage(probe).free / 2**30
    if free_gb < NEEDED_FREE_GB and not any(CACHE.glob("image-*/done")):
        return f"{free_gb:.1f} GiB free under {probe}; the image needs {NEEDED_FREE_GB}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = vm_skip_reason()
    for item in items:
        if "tests/vm/" in str(item.path).replace(os.sep, "/") and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class VmRun:
    build_s: float
    build_cached: bool
    guest_rc: int | None
    wall_s: float
    boot_s: float | None
    """Guest uptime when its init started (kernel and initramfs under emulation)."""
    accel: str
    checks: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""

    def check(self, name: str) -> dict[str, Any]:
        result = self.checks.get(name)
        assert result is not None, f"the guest never ran check {name!r}:\n{self.log_tail}"
        assert result["ok"], f"{name} failed in the guest: {result.get('traceback')}"
        return result


@pytest.fixture(scope="session")
def vm_run() -> VmRun:
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    build = subprocess.run(["bash", "scripts/vm-build.sh"], cwd=REPO, capture_output=True,
                           text=True, timeout=BUILD_TIMEOUT_S)  # fmt: skip
    build_s = time.monotonic() - t0
    assert build.returncode == 0, f"scripts/vm-build.sh failed:\n{build.stderr[-3000:]}"
    image = build.stdout.strip().splitlines()[-1]
    # The guest sees the tree read-only: without bytecode beside the sources it would compile
    # every module on every import, at 15-50x the host's cost.
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "compileall", "-q", "-j", "0",
         "tspulab", "controllers", "topologies", "tests", "bench"],
        cwd=REPO, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    job = OUT / "job"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir()
    t1 = time.monotonic()
    run = subprocess.run(
        ["bash", "scripts/vm-run.sh", "--image", image, "--job", str(job), "--out", str(OUT),
         "--timeout", str(GUEST_TIMEOUT_S), "--",
         ".venv/bin/python tests/vm/guest_checks.py --out /job/results.json"],
        cwd=REPO, capture_output=True, text=True, timeout=GUEST_TIMEOUT_S + 120,
    )  # fmt: skip
    wall_s = time.monotonic() - t1
    console = (job / "console.log").read_text(errors="replace") if job.exists() else ""
    up = re.search(r"tspulab-guest: up ([0-9.]+)", console)
    accel = re.search(r"with (kvm|tcg),", run.stderr)
    results = job / "results.json"
    vm = VmRun(
        build_s=round(build_s, 1),
        build_cached="cached image" in build.stderr,
        guest_rc=int((job / "rc").read_text()) if (job / "rc").exists() else None,
        wall_s=round(wall_s, 1),
        boot_s=float(up.group(1)) if up else None,
        accel=accel.group(1) if accel else "?",
        checks=json.loads(results.read_text()) if results.exists() else {},
        log_tail=(run.stderr + run.stdout)[-3000:],
    )
    summary = {k: v for k, v in vm.__dict__.items() if k != "log_tail"}
    (OUT / "vm-tier.json").write_text(json.dumps(summary, indent=1))
    return vm
