"""What the live fidelity tests (`test_live_*.py`) share: a module's lab run in a sandbox of its
own with nothing of it left after, the fidelity TLS client and server (tests/fidelity/wire.py)
in lab hosts, a host's RTT, and the TSPU's verdicts as its controller logged them."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.emulation.helpers import in_sandbox, leftovers
from tspulab.lab.services import start_logged
from tspulab.metrics.results import read_results

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def sandboxed(tmp_path_factory: pytest.TempPathFactory, fn: Callable[..., T], *args: Any) -> T:
    """`fn(runs_dir, *args)` in a sandbox of its own (the lab comes up and goes inside it); its
    value has a `run_dir` (a key or an attribute) whose made.jsonl must name nothing left."""
    value = in_sandbox(fn, tmp_path_factory.mktemp("runs"), *args)
    run_dir = value["run_dir"] if isinstance(value, dict) else value.run_dir
    assert leftovers(Path(run_dir)) == []
    return value


def wire(host: Any, *args: str, timeout_s: float = 40) -> dict[str, Any]:
    """Run the fidelity TLS client in a lab host; its JSON line."""
    argv = [sys.executable, "-m", "tests.fidelity.wire", "client", *args]
    proc = host.popen(argv, cwd=str(REPO), stdout=-1, stderr=-1)
    out, err = proc.communicate(timeout=timeout_s)
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-500:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def start_wire_server(live: Any, host: Any, names: list[str], nbytes: int) -> None:
    """The fidelity TLS server in `host` (a subscriber: connections opened from the outside),
    with a certificate for `names`, serving `nbytes` per request; returns once it listens."""
    cert = live.ca.issue(f"fidelity-{host.name}", names)
    log = live.run_dir / "fidelity-server.log"
    start_logged(
        host,
        [sys.executable, "-m", "tests.fidelity.wire", "server", "--bind", host.IP(),
         "--cert", str(cert.cert), "--key", str(cert.key), "--bytes", str(nbytes)],
        log, live.record, "fidelity tls server",
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "listening" not in log.read_text():
        time.sleep(0.05)


def rtt_ms(host: Any, address: str) -> float:
    """Mean of five pings from a lab host."""
    out = host.cmd(f"ping -n -c 5 -i 0.2 {address}")
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert match, out
    return float(match.group(1))


def verdicts(live: Any) -> list[dict[str, Any]]:
    """The TSPU's `verdict` events so far (the controller flushes its log to answer first)."""
    live.controller_stats()
    return [
        e for e in read_results(live.run_dir / "controller-events.jsonl")
        if e.get("event") == "verdict"
    ]  # fmt: skip
