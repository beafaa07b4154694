"""Emulation tests drive real namespaces, Open vSwitch, os-ken, nginx, dnsmasq and curl.

They are skipped, with the reason, where root or one of those programs is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

NEEDED = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "mnexec", "nginx", "dnsmasq",
          "curl", "ethtool", "unshare", "ss")  # fmt: skip


def emulation_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "emulation tests need root (network namespaces, Open vSwitch)"
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        return f"missing programs: {', '.join(missing)} (run scripts/setup.sh)"
    if importlib.util.find_spec("mininet") is None:
        return (
            "Mininet is not importable (Debian package mininet, venv with --system-site-packages)"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = emulation_skip_reason()
    for item in items:
        if "emulation" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.emulation)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
