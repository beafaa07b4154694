"""How much longer the lab waits for its own parts to come up on a slow machine.

`TSPULAB_TIME_SCALE` (default 1) multiplies the lab's bring-up waits (the controller's port,
daemons' PID files, servers listening, switches connecting), never scenario times, probe timeouts
or the resolver's (that one is every process's in the sandbox: scaled, a run in the VM hung on
lookups that go nowhere). The test VM under software emulation sets it (scripts/vm-run.sh,
docs/vm.md): there a process start and a Python import cost 15-50x what they cost on the host,
and os-ken alone takes longer to listen than the 20 s a host allows.
"""

from __future__ import annotations

import os

ENV = "TSPULAB_TIME_SCALE"


def scaled(seconds: float) -> float:
    """`seconds` times TSPULAB_TIME_SCALE (a bad or missing value counts as 1)."""
    try:
        scale = float(os.environ.get(ENV, "1"))
    except ValueError:
        scale = 1.0
    return seconds * max(scale, 1.0)
