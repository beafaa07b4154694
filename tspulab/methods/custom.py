"""Bring your own tool: a circumvention method whose client and server are the user's commands.

A scenario (or the pytest plugin, `tspulab.pytest_plugin`) names the commands of a tool that
tspulab does not know, with `kind: custom` (`tspulab.methods.options.CustomOptions`): the server
runs in the cloud host that owns the method's address, the client in each subscriber host that
probes through it, each in a working directory of its own under the method's directory of the run
(`methods/<name>/<side>-<host>/`, where `files` are copied first), with its output in
`methods/<name>/<side>.<host>.log`. Readiness and stopping are the ones every adapter uses
(`tspulab.methods.process`): a port that listens, a line in the log, a command that succeeds,
each with a timeout; a process that exits while awaited is an error with the tail of its log.

Every error names the method and the scenario line of its options, so a user sees which entry of
which file to fix: a command that is not found (checked before anything starts), a readiness
check that never passes, a server that exits while the run goes on (`health`, asked before each
probe: the probe is recorded as failed with the reason and the rest of the run goes on).

Commands from a scenario file run as root in the lab's namespaces: `require_allowed` refuses a
scenario with custom methods unless the caller opted in (`tspulab run --allow-commands`, or the
plugin, whose user wrote the commands in their own test code).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tspulab.methods.base import Access, Method
from tspulab.methods.options import CustomOptions, CustomReady, CustomSide
from tspulab.methods.probe import MethodProbe
from tspulab.methods.process import (
    MethodError,
    Node,
    Started,
    log_tail,
    wait_command,
    wait_listening,
    wait_log,
)
from tspulab.methods.tunnel import add_routes

#: Stands for `{url}` in a rendered `access.command` until a probe fills it in.
_URL = "\x00url\x00"
#: Words a shell command may start with that are not programs to look up.
_SHELL_WORDS = frozenset({"exec", "env", "nohup", "setsid", "cd", "set", "export", "."})


class CommandsNotAllowed(RuntimeError):
    """A scenario with custom methods, run without the caller's opt-in."""


def scenario_line(path: Path | None, name: str) -> int | None:
    """The line of method `name` in the scenario file (the loaded model keeps no positions)."""
    if path is None or not path.is_file():
        return None
    from tspulab.dpi.yamlload import ScenarioError, read_yaml

    try:
        doc = read_yaml(path, str(path))
    except (ScenarioError, OSError):
        return None
    methods = doc.data.get("circumvention") if isinstance(doc.data, dict) else None
    for i, entry in enumerate(methods if isinstance(methods, list) else []):
        if isinstance(entry, dict) and entry.get("name") == name:
            return doc.line_of(("circumvention", i))
    return None


def custom_methods(methods: Iterable[Any]) -> list[Any]:
    """The `kind: custom` entries of a scenario's `circumvention:`."""
    return [m for m in methods if m.kind == "custom"]


def require_allowed(scenario: Any, allow_commands: bool) -> None:
    """Refuse, before anything is brought up, a scenario that would run commands of its own
    unless the caller allowed it (the message names each method and its line); when allowed,
    check that every program and file the commands need is there (`check_commands`)."""
    found = custom_methods(scenario.circumvention)
    if not found:
        return
    lines = {m.name: scenario_line(scenario.path, m.name) for m in found}
    if allow_commands:
        problems = check_commands(scenario, lines)
        if problems:
            raise MethodError("; ".join(problems))
        return
    where = ", ".join(
        f"'{m.name}'" + (f" (line {lines[m.name]})" if lines[m.name] else "") for m in found
    )
    raise CommandsNotAllowed(
        f"{scenario.path}: circumvention {where} is kind custom: it runs the commands written in "
        "the scenario file, as root, in the lab's hosts. Run it with `tspulab run "
        "--allow-commands` if you trust the file (scenario files get shared)."
    )


def check_commands(scenario: Any, lines: dict[str, int | None]) -> list[str]:
    """What is missing before a lab comes up: a `files` source, or a program that is neither on
    PATH, nor an existing absolute path, nor one of the side's `files` (relative programs run
    from the side's working directory, where `files` are copied)."""
    problems = []
    base = scenario.path.parent
    for m in custom_methods(scenario.circumvention):
        line = lines.get(m.name)
        where = f"circumvention '{m.name}' (custom, {scenario.path.name}" + (
            f":{line})" if line else ")"
        )
        for side, spec in (("server", m.options.server), ("client", m.options.client)):
            if spec is None:
                continue
            for name, source in spec.files.items():
                path = Path(source).expanduser()
                path = path if path.is_absolute() else base / path
                if not path.is_file():
                    problems.append(f"{where}: {side}.files.{name}: {path} not found")
            program = _program(spec.command if isinstance(spec.command, str) else
                               list(spec.command))  # fmt: skip
            if program is None or "{" in program:
                continue
            given = {os.path.normpath(n) for n in spec.files}
            if "/" in program and not Path(program).is_absolute():
                found = os.path.normpath(program) in given
            else:
                found = find_program(program, base, spec.env.get("PATH"))
            if not found:
                problems.append(
                    f"{where}: {side} command '{program}' not found (on PATH, an absolute "
                    "path, or one of its files:)"
                )
    return problems


def _program(command: str | list[str]) -> str | None:
    """The program a command starts (None when a shell construct starts it)."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    while words and (_assignment(words[0]) or words[0] in _SHELL_WORDS):
        if words[0] in ("cd", "set", "export", "."):
            return None
        words = words[1:]
    return words[0] if words else None


def _assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and name.isidentifier()


def find_program(program: str, cwd: Path, path_env: str | None) -> bool:
    """Whether `program` can be run from `cwd`: a path (relative to `cwd`) to an executable
    file, or a name on PATH."""
    if "/" in program:
        target = Path(program) if Path(program).is_absolute() else cwd / program
        return target.is_file() and os.access(target, os.X_OK)
    return shutil.which(program, path=path_env or os.environ.get("PATH")) is not None


class CustomTool(Method):
    kind = "custom"
    tool = "custom"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.servers: list[Started] = []
        self.clients: dict[str, Started] = {}
        self.cert: tuple[str, str] = ("", "")
        self._line: int | None = None

    @property
    def options(self) -> CustomOptions:
        assert isinstance(self.ctx.options, CustomOptions)
        return self.ctx.options

    @property
    def where(self) -> str:
        """The method and its scenario line, for every message."""
        scenario = self.ctx.scenario_path
        if self._line is None:
            self._line = scenario_line(scenario, self.ctx.name) or 0
        line = self._line
        at = f"{scenario.name if scenario else 'scenario'}:{line}" if line else None
        return f"circumvention '{self.ctx.name}' (custom{', ' + at if at else ''})"

    # --- preparing and starting ---------------------------------------------------------------

    def _prepare(self) -> None:
        opts = self.options
        if opts.server_name is not None:
            files = self.ctx.certs.issue_server(
                "server", [opts.server_name], [self.ctx.server_address]
            )
            self.cert = (str(files.cert), str(files.key))
        for side, spec in (("server", opts.server), ("client", opts.client)):
            for name, source in (spec.files if spec else {}).items():
                if not self._source(source).is_file():
                    raise MethodError(
                        f"{self.where}: {side}.files.{name}: {self._source(source)} not found"
                    )

    def _source(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        if path.is_absolute():
            return path
        base = self.ctx.scenario_path.parent if self.ctx.scenario_path else Path.cwd()
        return (base / path).resolve()

    def values(self, node: Node, workdir: Path) -> dict[str, str]:
        """What each placeholder stands for in `node`."""
        ctx = self.ctx
        return {
            "address": ctx.server_address,
            "port": str(ctx.port),
            "local_port": str(ctx.local_port),
            "dir": str(workdir),
            "method_dir": str(ctx.directory),
            "host": node.name,
            "server_name": self.options.server_name or "",
            "cert": self.cert[0],
            "key": self.cert[1],
            "ca": str(ctx.certs.ca_path),
            "tun": f"ct{ctx.tag(12)}",  # 14 characters: one more letter fits a second name
            "url": _URL,
        }

    def _start(self, side: str, spec: CustomSide, node: Node) -> Started:
        workdir = self.directory / f"{side}-{node.name}"
        workdir.mkdir(parents=True, exist_ok=True)
        for name, source in spec.files.items():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self._source(source), target)
        values = self.values(node, workdir)
        env = {k: v.format_map(values) for k, v in spec.env.items()}
        if isinstance(spec.command, str):
            argv = ["sh", "-c", spec.command.format_map(values)]
        else:
            argv = [part.format_map(values) for part in spec.command]
        program = _program(argv[2] if isinstance(spec.command, str) else argv)
        if program is not None and not find_program(program, workdir, env.get("PATH")):
            raise MethodError(
                f"{self.where}: {side} command '{program}' not found (PATH, or a path relative "
                f"to {workdir}); the {side} was not started"
            )
        started = self.processes.start(node, argv, side, env=env or None, cwd=workdir)
        try:
            self._wait_ready(side, spec.ready, started, values)
        except MethodError as err:
            raise MethodError(f"{self.where}: {side} not ready: {err}") from None
        return started

    def _wait_ready(
        self, side: str, ready: CustomReady | None, started: Started, values: dict[str, str]
    ) -> None:
        tool = f"{self.ctx.name} {side}"
        if ready is None:
            time.sleep(0.2)
            if started.proc.poll() is not None:
                raise MethodError(
                    f"exited (status {started.proc.returncode}) right after it started; "
                    f"{started.log}:\n    {log_tail(started.log)}"
                )
            return
        deadline = time.monotonic() + ready.timeout_s

        def left() -> float:
            return max(0.1, round(deadline - time.monotonic(), 2))

        if ready.port is not None:
            port = int(str(ready.port).format_map(values))
            wait_listening(
                started.node, port, tool=tool, started=started, proto=ready.proto,
                timeout_s=left(),
            )  # fmt: skip
        if ready.log is not None:
            wait_log(started, ready.log, tool=tool, timeout_s=left())
        if ready.command is not None:
            command = ready.command.format_map(values)
            wait_command(
                started.node, command, tool=tool, what=f"success of `{command}`",
                started=started, timeout_s=left(),
            )  # fmt: skip

    def start_server(self, node: Node) -> None:
        self.prepare()
        if self.options.server is not None:
            self.servers.append(self._start("server", self.options.server, node))

    def start_client(self, node: Node) -> Access:
        self.prepare()
        opts, access = self.options, self.options.access
        if opts.client is not None:
            self.clients[node.name] = self._start("client", opts.client, node)
        values = self.values(node, self.directory / f"client-{node.name}")
        if access.socks5:
            return Access(socks5=access.socks5.format_map(values))
        if access.http_proxy:
            return Access(http_proxy=access.http_proxy.format_map(values))
        if access.tun:
            dev = access.tun.format_map(values)
            undo = add_routes(
                node, access.routes, dev, self.ctx.route_table(), tool=f"{self.where} client"
            )
            self.undo.append((node, undo))
            return Access(tun=dev)
        assert access.command is not None
        return Access(command=access.command.format_map(values))

    # --- while the run goes on ----------------------------------------------------------------

    def health(self, node: Node) -> str | None:
        """Why a probe from `node` cannot go through: the server, or this host's client, has
        exited (with the tail of its log)."""
        for started in [*self.servers, *[c for c in [self.clients.get(node.name)] if c]]:
            if started.proc.poll() is not None:
                return (
                    f"{self.where}: {started.name} on {started.node.name} exited (status "
                    f"{started.proc.returncode}); {started.log}:\n    {log_tail(started.log, 6)}"
                )
        return None

    def stop_client(self, node: Node) -> None:
        self.clients.pop(node.name, None)
        super().stop_client(node)

    def stop(self) -> None:
        super().stop()
        self.servers.clear()
        self.clients.clear()


def command_probe(
    node: Node,
    access: Access,
    url: str,
    *,
    method: str,
    timeout_s: float,
    expect_text: str | None = None,
) -> MethodProbe:
    """A probe that is a command of the user's (`access.command`, `{url}` filled in): success is
    exit status 0 within the timeout. A command that prints the page it fetched is also held to
    `expect_text` (the page names the service that answered, as every probe checks); one that
    prints nothing is judged by its status alone."""
    assert access.command is not None
    command = access.command.replace(_URL, shlex.quote(url))
    started = time.time()
    proc = node.popen(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    total = time.time() - started
    text = out.decode(errors="replace")
    right = expect_text is None or not text.strip() or expect_text in text
    ok = code == 0 and right
    if ok:
        outcome = "ok"
    elif code is None:
        outcome = "timeout"
    else:
        outcome = f"command-exit-{code}" if code != 0 else "wrong-service"
    return MethodProbe(
        method=method, url=url, ok=ok, outcome=outcome, curl_exit=-1 if code is None else code,
        http_code=None, size_bytes=len(out), ttfb_s=None, total_s=total,
        goodput_bps=len(out) * 8 / total if ok and out and total > 0 else None,
        access=access.describe(), started=started,
        stderr=err.decode(errors="replace").strip()[-300:],
    )  # fmt: skip
