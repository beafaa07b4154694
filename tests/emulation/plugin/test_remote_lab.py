"""The plugin's lab dies with the test process: SIGKILL of a process that holds a RemoteLab (as
pytest holds one in a module-scoped fixture) leaves nothing of the lab behind, without teardown
code running and without `tspulab clean`; the results measured before stay in the run directory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.emulation.helpers import leftovers
from tspulab.lab.record import RunRecord

DEMO = Path(__file__).resolve().parents[3] / "scenarios" / "demo.yaml"

HOLDER = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from tspulab.remote_lab import RemoteLab
    from tspulab.scenario.schema import load_scenario

    def probe(live):
        return live.probe("sub1", "yandex").ok

    lab = RemoteLab(load_scenario(sys.argv[1]), Path(sys.argv[2])).start()
    print(lab.run_dir, lab.call(probe), flush=True)
    sys.stdin.read()   # holds the lab until killed
""")


def test_sigkill_of_the_holder_ends_the_lab(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(DEMO), str(tmp_path / "runs")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().split()
        assert line and line[1] == "True", line
        run_dir = Path(line[0])
        assert [e for e in RunRecord(run_dir).entries() if e["kind"] == "sandbox"]
        assert leftovers(run_dir)  # the lab is up: its sandbox has processes
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # The kernel ends the PID namespace's processes; under a heavy load (load average 17 on
        # 2 cores) that took more than 20 s once, so allow a minute.
        deadline = time.monotonic() + 60
        while leftovers(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = leftovers(run_dir)
        assert left == [], left
        results = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
        assert [r["service"] for r in results] == ["yandex"] and results[0]["ok"]
    finally:
        if holder.poll() is None:
            holder.kill()
