"""`tspulab shell` driven through a pseudo-terminal, as a user at a terminal drives it: typed
commands, Tab, the up arrow, Ctrl-C, Ctrl-D, a terminal that goes away (SIGHUP), and SIGTERM.

Each test is one `tspulab shell` process on the demo scenario (one ISP, the Telegram 2018 day-one
registry: Viber shares the blocked AWS /15), read from the screen with pexpect.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.emulation.helpers import leftovers, sandbox_gone

pexpect = pytest.importorskip("pexpect", reason="pexpect (the test extras) drives the terminal")

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.yaml"
TSPULAB = Path(sys.executable).parent / "tspulab"
PROMPT = "tspulab> "
UP = "\x1b[A"


def spawn(tmp_path: Path) -> pexpect.spawn:
    env = dict(os.environ, TSPULAB_SHELL_HISTORY=str(tmp_path / "history"), TERM="xterm")
    child = pexpect.spawn(
        str(TSPULAB), ["shell", str(DEMO), "--runs-dir", str(tmp_path / "runs")],
        cwd=str(ROOT), env=env, encoding="utf-8", timeout=30, dimensions=(50, 220),
    )  # fmt: skip
    child.logfile_read = (tmp_path / "screen.txt").open("w")
    child.expect("exit or Ctrl-D tears the lab down", timeout=180)
    child.expect_exact(PROMPT)
    return child


def command(child: pexpect.spawn, line: str, timeout: float = 30) -> str:
    """Type a line, return what the shell printed before its next prompt."""
    child.sendline(line)
    child.expect_exact(PROMPT, timeout=timeout)
    return str(child.before)


def run_dir_of(tmp_path: Path) -> Path:
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_a_session_at_the_terminal(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    run_dir = run_dir_of(tmp_path)

    assert "FAILED timeout" in command(child, "probe sub1 viber"), "Viber's /15 is listed"
    assert "ok" in command(child, "probe sub1 yandex").split(":")[-1]
    # Mininet CLI style: the rest of the line runs in sub1's namespace; curl trusts the run's CA
    out = command(child, "sub1 curl -s -o /dev/null -w 'code=%{http_code}\\n' https://yandex.ru/")
    assert "code=200" in out
    nodes = command(child, "nodes")
    assert "switch, TSPU of isp" in nodes and "10.1.0.11" in nodes
    # a node name in the command stands for its address (Mininet's rule)
    assert "1 received" in command(child, "sub1 ping -c1 -W2 dns1")

    # Tab completes the command, the subscriber and the service
    child.send("prob\t")
    child.expect_exact("probe ")
    child.send("sub\t")
    child.expect_exact("sub")  # sub1 and sub2: completes the common part
    child.send("1 vib\t")
    child.expect_exact("viber")
    child.sendline("")
    child.expect_exact(PROMPT)
    assert "FAILED timeout" in str(child.before)
    # the up arrow brings the last line back
    child.send(UP)
    child.expect_exact("probe sub1 viber")
    child.sendline("")
    child.expect_exact(PROMPT)
    assert "sub1 → viber" in str(child.before)

    # Ctrl-C stops a host command and leaves the lab up
    child.sendline("sub1 ping -i 0.2 77.88.55.60")
    child.expect("bytes from 77.88.55.60")
    child.sendintr()
    child.expect_exact(PROMPT)
    assert "packets transmitted" in str(child.before)
    # ... and at the prompt it cancels the line
    child.send("probe sub1 tel")
    # as a person does: Ctrl-C once the line is on the screen. Sent before readline has read
    # the keys, the terminal flushes them and CPython's readline can miss a SIGINT that lands
    # just before its select() (it checks signals only on EINTR): the CI run of f5950d7 hung so
    child.expect_exact("probe sub1 tel")
    child.sendintr()
    child.expect_exact(PROMPT)
    assert "ok" in command(child, "probe sub2 yandex").split(":")[-1]

    # the switch: the registry's drop rules counted what they dropped
    flows = command(child, "flows")
    assert "registry: 14 rule(s)" in flows and "meters: none" in flows
    assert "is listed: 18.196.0.0/15" in command(child, "registry check 18.197.25.40")
    # delist the AWS range: Viber is back
    assert "−1 prefixes" in command(child, "registry remove 18.196.0.0/15")
    assert "HTTP 200" in command(child, "probe sub1 viber")
    # a live profile switch: SNI blocking of a listed name, with the rule that fired
    command(child, "registry add www.viber.com")
    assert "profile tspu-2022" in command(child, "profile tspu-2022")
    command(child, "capture start")
    assert "FAILED" in command(child, "probe sub1 viber")
    captured = command(child, "capture stop")
    verdicts = command(child, "verdicts 5")
    assert "sni=www.viber.com" in verdicts and "drop (rule sni-iv" in verdicts
    assert "unknown command or node 'bogus'" in command(child, "bogus")
    assert "error: no profile 'tspu-2099'" in command(child, "profile tspu-2099")
    listing = command(child, "help")
    assert all(name in listing for name in ("probe", "verdicts", "flows", "registry", "capture"))
    assert "bytes=N" in command(child, "help probe")
    assert "'ok': True" in command(child, "py live.controller_stats()")
    assert "10.1.0.11" in command(child, "py sub1.IP()")
    assert "report.html" in command(child, "report")

    # Ctrl-D leaves and tears down
    child.sendeof()
    child.expect("lab torn down", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    subscriber_pcap = run_dir / "capture-isp-1-subscriber.pcap"
    assert str(subscriber_pcap) in captured
    assert subscriber_pcap.stat().st_size > 200, "the ClientHello reached the subscriber port"
    assert (run_dir / "report.html").exists()
    assert "probe sub1 viber" in (tmp_path / "history").read_text()
    assert leftovers(run_dir) == [] and sandbox_gone(run_dir)


def test_a_lost_terminal_tears_the_lab_down(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    run_dir = run_dir_of(tmp_path)
    assert "ok" in command(child, "probe sub1 yandex").split(":")[-1]
    # a host command holds the terminal when it goes away
    child.sendline("sub1 ping -i 0.5 77.88.55.60")
    child.expect("bytes from 77.88.55.60")
    pid = child.pid
    # The terminal goes away (an SSH connection drops): the kernel hangs the terminal up and
    # sends SIGHUP to its session leader (here tspulab itself; over SSH, the login shell, which
    # sends it on to its jobs).
    os.close(child.child_fd)
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("tspulab shell still running 120 s after its terminal hung up")
    assert os.waitstatus_to_exitcode(status) == 0
    log = (run_dir / "shell.log").read_text()
    assert "terminal lost (" in log and "): tearing the lab down" in log
    made = (run_dir / "made.jsonl").read_text()
    assert '"teardown": "started"' in made and '"kind": "clean"' in made, "LiveLab tore down"
    assert leftovers(run_dir) == [] and sandbox_gone(run_dir)


def test_sigterm_tears_the_lab_down(tmp_path: Path) -> None:
    """`kill PID` of tspulab shell: the lab is torn down through LiveLab, exit status 130."""
    child = spawn(tmp_path)
    run_dir = run_dir_of(tmp_path)
    os.kill(child.pid, signal.SIGTERM)
    child.expect("interrupted: the lab was torn down", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    made = (run_dir / "made.jsonl").read_text()
    assert '"teardown": "started"' in made and '"kind": "clean"' in made
    assert leftovers(run_dir) == [] and sandbox_gone(run_dir)
