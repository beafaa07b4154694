"""The progress display: plain lines off a terminal, a live status line on one."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from tspulab.metrics.progress import Progress
from tspulab.scenario.probes import ProbeResult


def _result(ok: bool, **kw: object) -> ProbeResult:
    return ProbeResult(kind="https", subscriber="mts-1", service="telegram", role="target",
                       target="https://t.me/", round=1, ok=ok, outcome="ok" if ok else "timeout",
                       started=0.0, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    ticks = iter([0.0, 42.0])  # start, close
    with Progress(2, 3, stream=out, clock=lambda: next(ticks)) as p:
        assert not p.is_live
        p.stage("start", "2018-04-13 00:00")
        p.probe_done(_result(True))
        p.log("registry pushed")
        p.probe_done({"ok": False, "subscriber": "mts-2", "isp": "mts", "service": "telegram",
                      "method": "socks-proxy", "kind": "https", "outcome": "timeout"})  # fmt: skip
    assert out.getvalue().splitlines() == [
        "step 1/2: start at 2018-04-13 00:00 (probes so far 0/3)",
        "  [1/3] ok  mts-1 → telegram https (ok)",
        "registry pushed",
        "  [2/3] BLK mts-2 (mts) → telegram via socks-proxy https (timeout)",
        "done: 2/3 probes, 1 ok, 1 blocked, 42 s",
    ]
    assert "\x1b[" not in out.getvalue()  # no escape codes in CI logs


def test_live_status_line_on_a_terminal() -> None:
    """A real pseudo-terminal: rich redraws one line (carriage return + erase line)."""
    code = (
        "from tspulab.metrics.progress import Progress\n"
        "p = Progress(2, 2)\n"
        "assert p.is_live\n"
        "p.stage('stage 1', '2018-04-16 00:00')\n"
        "p.probe_done({'ok': True}); p.log('a message'); p.probe_done({'ok': False})\n"
        "p.close()\n"
    )
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=sub, stderr=subprocess.PIPE,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})  # fmt: skip
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[2K" in screen  # the status line is redrawn in place
    assert "a message" in screen
    last = screen.rsplit("\r", 2)[-2] if screen.endswith("\r\n") else screen.rsplit("\r", 1)[-1]
    assert "stage 1" in screen and "probes 2/2" in screen and "1 blocked" in screen, last
