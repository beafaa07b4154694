"""Strategies against the OVS lab's TSPU (Mininet, Open vSwitch, the os-ken controller) in a run
sandbox: `tspulab strategies --lab --profile P`.

The lab is the product's real censor: the controller judges the first packets of each flow with
the profile's engine and turns the verdict into switch state (drop, RST rewrite, meters), so a
strategy meets the switch-level enforcement the bench's NFQUEUE box (censor.py) does not have.
The scenario is made here: one ISP, one subscriber, the target name in the registry, its
service in a foreign cloud. The strategy's proxy and rewriters run on the subscriber (and on the
cloud's host for server-side ones) through ``mnexec``; trials are ``openssl s_client`` runs from
the subscriber (tlsclient.py). A trial succeeds when the server answered and the controller
logged no verdict other than allow for a connection of that trial.

Each lab run is sealed in its own sandbox (tspulab/lab/sandbox.py); several can run at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tspulab.contracts import EVENTS_FILE
from tspulab.strategies import tlsclient
from tspulab.strategies.bench import PROXY_PORT, Trial
from tspulab.strategies.spec import NONE, Strategy, parse_any
from tspulab.strategies.sweep import StrategyResult, by_window
from tspulab.strategies.verdicts import Judgement

ADDRESS = "104.244.42.1"
BRINGUP_ATTEMPTS = 3
SCENARIO = """version: 1
name: strategies-{profile}
description: "strategy sweep against {profile} (tspulab strategies --lab)"
topology:
  name: single-isp
  subscribers: 1{hops}
profile: {profile}
registry:
  - domains: [{target}]
    match: exact
clouds:
  - name: foreign
    prefixes: [104.244.40.0/21]
services:
  - name: target
    role: target
    domains: [{target}]
    cloud: foreign
    address: {address}
  - name: bystander
    role: innocent
    domains: [www.bystander.example]
    cloud: foreign
    address: 104.244.42.2
probes:
  rounds: 1
  timeout_s: 4
"""


def _start(prefix: list[str], argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*prefix, *argv], stdout=subprocess.PIPE, stderr=log.open("ab"), start_new_session=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode(errors="replace")
    if not line.startswith("ready"):
        _stop(proc)
        raise RuntimeError(f"{argv[2]} did not start: {line.strip()!r}; see {log}")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def _layers(strategy: Strategy, client: list[str], server: list[str], logs: Path) -> Iterator[None]:
    py, spec = sys.executable, strategy.text()
    started: list[subprocess.Popen[bytes]] = []
    try:
        if strategy.of_layer("stream"):
            started.append(_start(client, [py, "-m", "tspulab.strategies.proxy", "--strategy",
                                           spec, "--listen", f"127.0.0.1:{PROXY_PORT}"],
                                  logs / "proxy.log"))  # fmt: skip
        if strategy.of_layer("packet"):
            argv = [py, "-m", "tspulab.strategies.rewriter", "client", "--strategy", spec]
            started.append(_start(client, argv, logs / "rewriter-client.log"))
        if strategy.of_layer("server"):
            argv = [py, "-m", "tspulab.strategies.rewriter", "server", "--strategy", spec]
            started.append(_start(server, argv, logs / "rewriter-server.log"))
        yield
    finally:
        for proc in reversed(started):
            _stop(proc)


def _verdicts(run_dir: Path, since: float) -> list[tuple[float, Judgement]]:
    """The controller's first final verdict of each flow to the target, logged after ``since``."""
    path = run_dir / EVENTS_FILE
    out: list[tuple[float, Judgement]] = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if e.get("event") != "verdict" or e.get("t", 0) < since:
            continue
        flow = e.get("flow", {})
        if flow.get("server") != ADDRESS and flow.get("server_addr") != ADDRESS:
            continue
        v = e["verdict"]
        passed = v["action"] in ("allow", "detect")
        out.append((e["t"], Judgement(passed, v["action"], v.get("rule"), v.get("reason", ""), {})))
    return out


def scenario_text(profile: str, target: str, hops: tuple[int, int] | None = None) -> str:
    """The sweep's one-ISP scenario; ``hops`` (tspu, border) puts the TSPU after that many
    routers (topologies/hops.py), so a fake's TTL meets a real path; None: the default path
    (the TSPU before the first router)."""
    where = "" if hops is None else f"\n  hops: {{tspu: {hops[0]}, border: {hops[1]}}}"
    return SCENARIO.format(profile=profile, target=target, address=ADDRESS, hops=where)


def lab_sweep(
    profile: str,
    target: str,
    specs: Sequence[str],
    trials: int,
    runs_dir: Path,
    control: bool = True,
    hops: tuple[int, int] | None = None,
) -> list[StrategyResult]:
    """Run in a sandbox (run_in_sandbox): bring the lab up, try each strategy, tear down."""
    from tspulab.scenario.live import LiveLab
    from tspulab.scenario.schema import load_scenario_text

    scenario = load_scenario_text(
        scenario_text(profile, target, hops), f"strategies-{profile}.yaml"
    )
    with LiveLab(scenario, runs_dir, log=lambda *_: None) as run:
        return sweep_lab(run, profile, target, specs, trials, control)


def sweep_lab(
    run: Any,
    profile: str,
    target: str,
    specs: Sequence[str],
    trials: int,
    control: bool = True,
    fresh_box: bool = True,
) -> list[StrategyResult]:
    """Each strategy against a running lab of ``scenario_text`` (a LiveLab). With
    ``fresh_box`` the TSPU forgets everything between strategies (the profile is loaded
    again: a new engine), so one strategy's trials do not meet state another left, such as
    the client block after a detected desync fake (tspu-2026-desync, dpi/desync.py)."""
    results: list[StrategyResult] = []
    client = ["mnexec", "-a", str(run.host(run.subscribers[0]).pid)]
    server = ["mnexec", "-a", str(run.host("foreign").pid)]
    for n, spec in enumerate(["none"] * control + [s for s in specs if parse_any(s).steps]):
        if fresh_box and n:
            run.set_profile(profile)
        strategy = parse_any(spec) if spec != "none" else NONE
        started = time.monotonic()
        done: list[Trial] = []
        error = None
        try:
            with _layers(strategy, client, server, run.run_dir):
                for _ in range(trials):
                    proxy = f"127.0.0.1:{PROXY_PORT}" if strategy.of_layer("stream") else None
                    argv = tlsclient.s_client_argv(
                        ADDRESS, target, str(run.ca.ca_path), strategy.of_layer("client"), proxy
                    )
                    begun = time.time()
                    out, first, err = tlsclient.run(client, argv, target, 4.0)
                    ok = out.startswith(b"HTTP/1.1 200")
                    done.append(Trial(ok, first if ok else None, "ok" if ok else (
                        err.splitlines()[-1].split(":error:")[-1] if err else "no answer"
                    ), begun))  # fmt: skip
        except Exception as err:  # one broken strategy must not end the sweep
            error = f"{type(err).__name__}: {err}"
        time.sleep(0.3)  # the controller's last event lines
        verdicts = _verdicts(run.run_dir, done[0].started if done else time.time())
        judged: list[Judgement | None] = by_window(done, verdicts)
        # No final verdict logged: the flow was let go undecided (allow).
        judged = [
            j if j is not None else Judgement(True, "allow", None, "no verdict logged", {})
            for j in judged
        ]
        results.append(StrategyResult(
            strategy.text(), done, {profile: judged}, time.monotonic() - started, error
        ))  # fmt: skip
    return results


def run_lab(
    profile: str,
    target: str,
    specs: Sequence[str],
    trials: int,
    runs_dir: Path,
    control: bool = True,
    hops: tuple[int, int] | None = None,
) -> list[StrategyResult]:
    """``lab_sweep`` in a run sandbox of its own."""
    from tspulab.lab.network import LabError
    from tspulab.lab.sandbox import run_in_sandbox
    from tspulab.scenario.schema import load_scenario_text

    # Checked here: an error raised inside the sandbox comes back only as well as it pickles.
    load_scenario_text(scenario_text(profile, target, hops))
    runs_dir.mkdir(parents=True, exist_ok=True)
    timeout = 120 + 30 * trials * (len(specs) + 1)
    for attempt in range(1, BRINGUP_ATTEMPTS + 1):
        try:
            result: list[StrategyResult] = run_in_sandbox(
                lab_sweep, profile, target, list(specs), trials, runs_dir, control, hops,
                timeout_s=timeout,
            )  # fmt: skip
            return result
        except LabError as err:
            # The switches connect to the controller late on a loaded machine (seen here at a
            # load average of 9 on 2 cores); a new lab usually comes up.
            if attempt == BRINGUP_ATTEMPTS:
                raise
            print(f"lab bring-up failed ({err}); retrying", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def describe(results: Sequence[StrategyResult], profile: str) -> list[dict[str, Any]]:
    return [r.to_json([profile]) for r in results]
