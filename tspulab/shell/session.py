"""One shell session: the lab's lifetime and the terminal's.

    tspulab shell (outside)          ignores SIGHUP while the lab runs, takes the terminal back
     └ sandbox PID 1                 (tspulab.lab.sandbox) passes signals on
        └ run_shell (the job)        foreground process group of the terminal: reads the keys,
                                     gets Ctrl-C and the kernel's SIGHUP when the terminal is lost

Why the job takes the terminal's foreground: the sandbox starts it in a process group of its own,
and a background group that reads a terminal is stopped (SIGTTIN). Ctrl-C then reaches the job
(and a host command it runs), not the sandbox around it, so Ctrl-C stops `sub1 ping` and leaves
the lab up. Leaving the shell (exit, quit, Ctrl-D), SIGTERM and a lost terminal (SIGHUP: an SSH
connection that dropped, a closed terminal window) all tear the lab down through LiveLab; after a
hangup the rest of the output goes to `<run dir>/shell.log`, since the terminal is gone. Without a
terminal on stdin (a script piped in) the shell echoes each command, so the output reads as a
transcript.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGHUP, SIGTERM
from types import FrameType
from typing import Any

from tspulab.scenario.labrun import Interrupted
from tspulab.scenario.live import LiveLab
from tspulab.scenario.model import Scenario
from tspulab.shell.commands import LabShell, TerminalLost, terminal_gone

#: Where readline keeps the shell's history between sessions (override: TSPULAB_SHELL_HISTORY).
HISTORY_ENV = "TSPULAB_SHELL_HISTORY"
HISTORY_LENGTH = 1000


@dataclass
class ShellOutcome:
    run_dir: Path
    hung_up: bool = False
    leftovers: list[str] = field(default_factory=list)


def history_path() -> Path:
    return Path(os.environ.get(HISTORY_ENV) or Path.home() / ".tspulab_history")


def take_terminal() -> None:
    """Make this process group the terminal's foreground group (see the module's notes)."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from a background group
    os.tcsetpgrp(0, os.getpgrp())


def reclaim_terminal() -> None:
    """Outside, after the sandbox ended: give the foreground back to this process's group (the
    job's group is gone with it)."""
    if not os.isatty(0):
        return
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.tcsetpgrp(0, os.getpgrp())
    signal.signal(signal.SIGTTOU, previous)


def detach_output(log: Path) -> None:
    """After a hangup, writes to the terminal fail: the rest goes to `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def hangup_handler(log: Path, *, end_session: bool) -> Any:
    """What SIGHUP does: the output goes to `log` from then on (the terminal is gone), and in
    the session it also ends the shell; during teardown it only moves the output."""

    def on_hangup(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # one teardown, however many hangups follow
        detach_output(log)
        if end_session:
            raise TerminalLost("SIGHUP")

    return on_hangup


def _setup_readline(shell: LabShell) -> Any:
    try:
        import readline
    except ImportError:  # history and completion are a comfort, not a need
        return None
    readline.set_completer_delims(" \t\n")  # names hold '-' and '.'
    readline.set_history_length(HISTORY_LENGTH)
    with contextlib.suppress(OSError):
        readline.read_history_file(history_path())
    return readline


def _save_history(readline: Any) -> None:
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.write_history_file(history_path())


def banner(live: LiveLab) -> str:
    s = live.scenario
    isps = ", ".join(f"{i.name} ({i.profile})" for i in live.isps)
    services = ", ".join(f"{x.name} ({x.role})" for x in s.services)
    lines = [
        f"tspulab shell: {s.name} — {s.description or ''}".rstrip(" —"),
        f"ISPs: {isps}",
        f"subscribers: {' '.join(live.host_of)}",
        f"services: {services}",
        f"run directory: {live.run_dir}  (in host commands: $RUN)",
    ]
    if s.timeline:
        lines.append(
            "note: the scenario's timeline is not played here; registry and profile change the "
            "TSPU by hand"
        )
    example = s.services[0].domains[0]
    lines.append(
        f"type help, or a node and a command (sub1 curl https://{example}/); "
        "exit or Ctrl-D tears the lab down"
    )
    return "\n".join(lines)


def _loop(shell: LabShell) -> None:
    while True:
        try:
            shell.cmdloop()
            return
        except Interrupted:  # SIGTERM (LiveLab turns it into this): tear down
            raise
        except KeyboardInterrupt:  # Ctrl-C at the prompt cancels the line, as in bash
            print("^C")
        except OSError as err:  # EIO: written to a terminal that hung up before we heard of it
            if terminal_gone():
                raise TerminalLost(f"{err.strerror} on the terminal") from err
            raise


def run_shell(scenario: Scenario, runs_dir: Path, *, no_delays: bool = False) -> ShellOutcome:
    """The sandbox job: bring the lab up, run the shell on this process's terminal (or on
    piped commands), tear the lab down however the session ends."""
    tty = os.isatty(0)
    if tty:
        take_terminal()
    else:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    live = LiveLab(scenario, runs_dir, no_delays=no_delays, log=print)
    outcome = ShellOutcome(live.run_dir)
    log = live.run_dir / "shell.log"
    signal.signal(signal.SIGHUP, hangup_handler(log, end_session=True))
    try:
        with live:
            shell = LabShell(live, batch=not tty)
            readline = _setup_readline(shell) if tty else None
            print(banner(live), flush=True)
            try:
                _loop(shell)
            except TerminalLost as lost:
                outcome.hung_up = True
                detach_output(log)  # again if the handler did: the same file
                print(f"terminal lost ({lost}): tearing the lab down")
            finally:
                signal.signal(signal.SIGHUP, hangup_handler(log, end_session=False))
                shell.stop_captures()
                _save_history(readline)
    except TerminalLost:  # during bring-up: LiveLab has torn down what came up
        outcome.hung_up = True
    outcome.leftovers = live.leftovers
    return outcome


def shell_cli(path: str, runs_dir: str, no_delays: bool = False) -> int:
    """`tspulab shell`: validate, then run the session in a sandbox that shares this terminal."""
    from tspulab.lab.linkshape import DelaysUnavailable, decide, netem_supported
    from tspulab.lab.sandbox import start_sandbox
    from tspulab.scenario.schema import ScenarioError, load_scenario
    from tspulab.scenario.timeline_runner import NotImplementedInRunner, check_runnable

    try:
        scenario = load_scenario(path)
        check_runnable(scenario)
        decide(scenario.links, no_delays=no_delays, netem=netem_supported(), scenario=str(path))
    except (ScenarioError, NotImplementedInRunner, DelaysUnavailable) as err:
        print(err, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("tspulab shell: needs root (network namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    # A hangup is the job's to handle (it tears the lab down). setpriv and unshare inherit
    # SIG_IGN, so the SIGHUP a login shell sends its jobs cannot end the sandbox first; this
    # process passes the hangup it gets (as the session leader, or from that login shell) on
    # to the sandbox, whose PID 1 gives it to the job. SIGTERM is passed on the same way.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (SIGHUP, SIGTERM)}
    box = start_sandbox(run_shell, scenario, Path(runs_dir), no_delays=no_delays, interactive=True)
    for sig in previous:
        signal.signal(sig, lambda signum, _frame: box.signal(signum))
    try:
        outcome: ShellOutcome = box.wait()
    except KeyboardInterrupt:  # Ctrl-C before the job took the terminal: PID 1 passed it on
        try:
            box.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            box.kill()
        _say("interrupted: the lab was torn down", err=True)
        return 130
    finally:
        if box.proc.poll() is None:
            box.kill()
            box.proc.wait()
        box._remove_workdir()
        reclaim_terminal()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say(f"lab torn down; run directory: {outcome.run_dir}")
    if outcome.leftovers:
        _say(f"note: teardown still had to remove: {outcome.leftovers}", err=True)
    return 0


def _say(text: str, *, err: bool = False) -> None:
    with contextlib.suppress(OSError):  # the terminal may be gone (hangup)
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
