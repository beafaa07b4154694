"""QUIC against the 2022 TSPU (tspu-behaviour.md §5.3): a real aioquic QUIC v1 handshake to UDP 443
is dropped by the first-datagram rule (≥ 1001 bytes, version 00000001), while the same client
speaking QUIC v2 passes, as Firefox's draft-29 did until Yota began decrypting Initials."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.lab.services import start_logged
from tspulab.metrics.results import read_results
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "tspu-2022-sni.yaml"


def _quic(live: LiveLab, version: int) -> dict[str, object]:
    argv = [sys.executable, "-m", "tspulab.lab.quicpeer", "client", "--host", "yandex.ru",
            "--ca", str(live.ca.ca_path), "--version", str(version), "--timeout", "3"]  # fmt: skip
    proc = live.host("sub1").popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = proc.communicate(timeout=20)
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _quic_versions(tmp_path: Path) -> Path:
    with LiveLab(load_scenario(SCENARIO), tmp_path, log=silent) as live:
        host = live.host("yandex")
        cert = live.ca.issue("quic-yandex", ["yandex.ru"])
        server = [sys.executable, "-m", "tspulab.lab.quicpeer", "server",
                  "--cert", str(cert.cert), "--key", str(cert.key), "--bind", "77.88.55.60"]  # fmt: skip
        start_logged(host, server, live.run_dir / "quic-server.log", live.record, "quic server")
        time.sleep(1.0)
        assert live.probe("sub1", "yandex").ok, "TCP to the same server is allowed"
        v1 = _quic(live, 1)
        assert v1["outcome"] == "timeout", v1
        v2 = _quic(live, 2)
        assert v2["ok"], v2
        events = read_results(live.run_dir / "controller-events.jsonl")
        quic = [e["verdict"] for e in events if e.get("event") == "verdict"
                and e["flow"]["proto"] == 17 and e["flow"]["server_port"] == 443]  # fmt: skip
        assert {v["action"] for v in quic} == {"drop", "allow"}
        assert any(v.get("rule", "").startswith("quic-v1-1001") for v in quic)
    return live.run_dir


def test_quic_v1_initial_dropped_v2_passes(tmp_path: Path) -> None:
    run_dir = in_sandbox(_quic_versions, tmp_path)
    assert leftovers(run_dir) == []
