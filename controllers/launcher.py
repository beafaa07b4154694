"""Start os-ken apps in this process (os-ken 4 has no `osken-manager` any more).

Follows the removed `os_ken/cmd/manager.py`: configure oslo.config, initialise logging, then
`AppManager.run_apps`. Listens on 127.0.0.1 only; the lab picks a free port.

    python -m tspulab.controllers.launcher --config RUN/controller.json --port 6653
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

# app_manager must be imported before the controller module (it registers config options).
from os_ken.base import app_manager

from tspulab.controllers.config import ENV_VAR
from tspulab.controllers.events import flush_all

APPS = ("tspulab.controllers.tspu", "tspulab.controllers.learning_switch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="controller.json written by the lab")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--verbose", action="store_true", help="os-ken debug logging")
    args = parser.parse_args(argv)

    os.environ[ENV_VAR] = args.config
    from os_ken import cfg, log
    from os_ken.controller import controller  # noqa: F401  (registers ofp_* options)

    cfg.CONF(
        args=[
            "--ofp-listen-host",
            args.host,
            "--ofp-tcp-listen-port",
            str(args.port),
            *(["--verbose"] if args.verbose else []),
        ],
        project="os_ken",
    )
    log.init_log()

    # The lab stops the controller with SIGTERM: write out the event log's last batch, then
    # leave at once as before (os-ken's run_apps cannot unwind its native threads cleanly).
    def on_term(signum: int, frame: object) -> None:
        flush_all()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    app_manager.AppManager.run_apps(list(APPS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
