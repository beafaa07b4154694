"""kind: custom (tspulab/methods/custom.py): the user's own commands, run for real.

The adapter runs here against a "node" that is this machine's own namespace (the Node protocol:
`cmd` and `popen`), with real processes on loopback: a program that is not found, a readiness
check that never passes, a server that exits while awaited or later, and a working tool whose
files, environment and placeholders arrive. No root needed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tspulab.methods import adapter_class
from tspulab.methods.base import Access, MethodContext
from tspulab.methods.custom import CommandsNotAllowed, command_probe, require_allowed
from tspulab.methods.process import MethodError
from tspulab.scenario.runner import run_scenario_cli
from tspulab.scenario.schema import ScenarioError, load_scenario

HEAD = """\
version: 1
name: custom-unit
topology: {name: single-isp, subscribers: 1}
profile: tspu-2022
clouds:
  - {name: hetzner, prefixes: [88.99.0.0/16]}
services:
  - {name: blocked, role: target, domains: [blocked.example.org], cloud: hetzner, address: 88.99.2.10}
  - {name: hoster, role: innocent, domains: [www.hoster.de], cloud: hetzner, address: 88.99.2.20}
circumvention:
  - name: mytool
    kind: custom
    cloud: hetzner
    address: 88.99.1.10
"""


class LocalNode:
    """This process's own namespaces as a lab host (the Node protocol of tspulab.methods)."""

    name = "local"

    def cmd(self, command: str) -> str:
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        return done.stdout + done.stderr

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, start_new_session=True, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scenario_file(tmp_path: Path, options: str) -> Path:
    path = tmp_path / "tool.yaml"
    path.write_text(HEAD + "    options:\n" + textwrap.indent(textwrap.dedent(options), " " * 6))
    return path


def adapter(tmp_path: Path, options: str, port: int | None = None) -> Any:
    path = scenario_file(tmp_path, options)
    method = load_scenario(path).circumvention[0]
    ctx = MethodContext(
        name=method.name, directory=tmp_path / "run" / "methods" / method.name,
        server_address="127.0.0.1", port=port or free_port(), options=method.options,
        scenario_path=path,
    )  # fmt: skip
    return adapter_class("custom")(ctx)


SERVER = """\
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
print("up with", os.environ["GREETING"], open("motd.txt").read().strip(), flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello from the tool\\n"); c.close()
"""


def test_a_tool_starts_with_its_files_env_and_placeholders(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "motd.txt").write_text("motd-42\n")
    tool = adapter(tmp_path, f"""\
        server:
          command: ["{sys.executable}", server.py, "{{port}}"]
          env: {{GREETING: "hi-{{host}}"}}
          files: {{server.py: server.py, motd.txt: motd.txt}}
          ready: {{port: "{{port}}", log: "up with hi-local motd-42", timeout_s: 10}}
        access:
          command: "{sys.executable} -c 'import socket,sys; s=socket.create_connection((\\"127.0.0.1\\", {{port}})); sys.stdout.write(s.recv(99).decode())' {{url}}"
        """)  # fmt: skip
    node = LocalNode()
    try:
        tool.start_server(node)
        access = tool.start_client(node)
        assert access.command is not None and access.describe() == "command"
        got = command_probe(node, access, "https://x.example/", method="mytool", timeout_s=10,
                            expect_text="hello from the tool")  # fmt: skip
        assert got.ok and got.outcome == "ok", got
        assert tool.health(node) is None
        log = (tool.directory / "server.local.log").read_text()
        assert "up with hi-local motd-42" in log
        assert (tool.directory / "server-local" / "server.py").is_file()
    finally:
        tool.stop()


def test_a_command_that_is_not_found_is_named_with_the_scenario_line(tmp_path: Path) -> None:
    tool = adapter(tmp_path, """\
        server:
          command: [./build/mytool-server, --listen, "{address}:{port}"]
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    with pytest.raises(MethodError) as err:
        tool.start_server(LocalNode())
    text = str(err.value)
    assert "circumvention 'mytool' (custom, tool.yaml:11)" in text
    assert "server command './build/mytool-server' not found" in text
    assert not tool.processes.started  # nothing was started


def test_a_readiness_check_that_never_passes_times_out_with_the_log(tmp_path: Path) -> None:
    tool = adapter(tmp_path, """\
        server:
          command: "echo starting; exec sleep 30"
          ready: {port: "{port}", timeout_s: 0.6}
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    try:
        with pytest.raises(MethodError) as err:
            tool.start_server(LocalNode())
        text = str(err.value)
        assert "tool.yaml:11" in text and "server not ready" in text
        assert f"no TCP listener on port {tool.ctx.port} after 0.6 s" in text
        assert "starting" in text  # the tail of its log
    finally:
        tool.stop()


def test_a_server_that_exits_while_awaited_or_later_is_reported(tmp_path: Path) -> None:
    tool = adapter(tmp_path, """\
        server:
          command: "echo cannot bind >&2; exit 3"
          ready: {log: never}
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    with pytest.raises(MethodError, match=r"exited \(status 3\)[\s\S]*cannot bind"):
        tool.start_server(LocalNode())
    tool.stop()

    later = adapter(tmp_path, """\
        server:
          command: "echo serving; sleep 0.5; echo crashed; exit 7"
          ready: {log: serving}
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    node = LocalNode()
    later.start_server(node)
    assert later.health(node) is None
    later.processes.started[0].proc.wait(timeout=5)
    problem = later.health(node)
    assert problem is not None
    assert "tool.yaml:11" in problem and "server on local exited (status 7)" in problem
    assert "crashed" in problem
    later.stop()


def test_access_kinds_give_the_probe_its_way_through(tmp_path: Path) -> None:
    tool = adapter(tmp_path, 'access: {socks5: "127.0.0.1:{local_port}"}\n')
    assert tool.start_client(LocalNode()) == Access(socks5=f"127.0.0.1:{tool.ctx.local_port}")
    tool = adapter(tmp_path, 'access: {http_proxy: "{address}:{port}"}\n', port=3128)
    assert tool.start_client(LocalNode()).curl_args() == [
        "--proxytunnel", "--proxy", "http://127.0.0.1:3128"
    ]  # fmt: skip


def test_a_command_probe_fails_with_the_exit_status_or_a_timeout(tmp_path: Path) -> None:
    node = LocalNode()
    failed = command_probe(node, Access(command="exit 4"), "u", method="m", timeout_s=5)
    assert not failed.ok and failed.outcome == "command-exit-4"
    slow = command_probe(node, Access(command="sleep 5"), "u", method="m", timeout_s=0.3)
    assert not slow.ok and slow.outcome == "timeout"
    quiet = command_probe(node, Access(command="true"), "u", method="m", timeout_s=5,
                          expect_text="svc")  # fmt: skip
    assert quiet.ok  # nothing printed: judged by its status
    wrong = command_probe(node, Access(command="echo another page"), "u", method="m",
                          timeout_s=5, expect_text="svc")  # fmt: skip
    assert not wrong.ok and wrong.outcome == "wrong-service"


def test_commands_are_refused_without_the_opt_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, """\
        server: {command: [./mytool, serve], files: {mytool: mytool}}
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    (tmp_path / "mytool").write_text("#!/bin/sh\n")
    scenario = load_scenario(path)
    with pytest.raises(CommandsNotAllowed, match=r"'mytool' \(line 11\) is kind custom"):
        require_allowed(scenario, allow_commands=False)
    require_allowed(scenario, allow_commands=True)
    # `tspulab run` refuses before anything is brought up (no root needed to see it)
    assert run_scenario_cli(str(path), str(tmp_path / "runs"), allow_commands=False) == 2
    assert "--allow-commands" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_bad_options_are_reported_at_their_line(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, """\
        server:
          command: [mytool, "{adress}"]
          ready: {timeout_s: 5}
        access: {socks5: "127.0.0.1:{local_port}", tun: "{tun}"}
        """)  # fmt: skip
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    text = str(err.value)
    assert "tool.yaml:17:9: circumvention[0].options.server.command: unknown placeholder" in text
    assert "tool.yaml:18:9: circumvention[0].options.server.ready: give at least one" in text
    assert "tool.yaml:19:7: circumvention[0].options.access: give exactly one" in text


def test_programs_and_files_are_checked_before_bring_up(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, """\
        server:
          command: [./build/mytool-server, --listen, "{address}:{port}"]
          files: {lib.conf: conf/lib.conf}
        client:
          command: "PORT={local_port} exec mytool-client-not-on-path --socks {local_port}"
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    with pytest.raises(MethodError) as err:
        require_allowed(load_scenario(path), allow_commands=True)
    text = str(err.value)
    assert f"circumvention 'mytool' (custom, tool.yaml:11): server.files.lib.conf: " \
        f"{tmp_path}/conf/lib.conf not found" in text  # fmt: skip
    assert "server command './build/mytool-server' not found" in text
    assert "client command 'mytool-client-not-on-path' not found" in text
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "lib.conf").write_text("x")
    ok = scenario_file(tmp_path, """\
        server:
          command: [./build/mytool-server, "{port}"]
          files: {build/mytool-server: conf/lib.conf}
        client: {command: "exec sh -c 'sleep 1'"}
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    require_allowed(load_scenario(ok), allow_commands=True)


def test_probes_through_a_dead_server_fail_as_method_down(tmp_path: Path) -> None:
    from tspulab.methods.lab import LabMethods

    path = scenario_file(tmp_path, """\
        server:
          command: "echo up; sleep 0.3; echo gone; exit 5"
          ready: {log: up}
        access: {socks5: "127.0.0.1:{local_port}"}
        """)  # fmt: skip
    scenario = load_scenario(path)
    methods = LabMethods(
        scenario.circumvention, tmp_path / "run", None, clients=1, log=lambda _: None,
        scenario_path=scenario.path,
    )  # fmt: skip
    node = LocalNode()
    try:
        methods.start_servers(lambda _cloud: node, lambda _cloud: ["88.99.0.0/16"])
        methods.adapters["mytool"].processes.started[0].proc.wait(timeout=5)
        got = methods.probe("mytool", node, "https://x.example/", ca=None, timeout_s=1)
        assert not got.ok
        assert got.outcome.startswith("method-down: circumvention 'mytool' (custom, tool.yaml:11)")
        assert "exited (status 5)" in got.outcome and "gone" in got.outcome
    finally:
        methods.stop()
