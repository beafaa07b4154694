"""What a test of the pytest plugin holds: the lab, its subscribers and the user's tool.

`Lab` wraps a `tspulab.remote_lab.RemoteLab` (the lab lives in a run sandbox); each action is a
small module-level function sent there and run beside the `LiveLab` (`fn(live, *args)`), so only
plain values cross. The assertion helpers return a `Check`, true or false, whose repr shows what
was seen, so a failed `assert` prints the probe. docs/ci.md describes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Check:
    """The answer of an assertion helper: true or false, with what was seen, so that a failed
    `assert` shows the probe."""

    passed: bool
    what: str
    seen: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        details = ", ".join(f"{k}={v!r}" for k, v in self.seen.items() if v not in (None, ""))
        return f"<{'PASS' if self.passed else 'FAIL'} {self.what}: {details}>"


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str

    def __bool__(self) -> bool:
        return self.returncode == 0


def _probe(
    live: Any, sub: str, target: str, via: str, kind: str, timeout_s: float | None,
    path: str, range_bytes: int, stamp: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    result = live.probe(
        sub, target, method=via, kind=kind, timeout_s=timeout_s, path=path,
        range_bytes=range_bytes, stamp=stamp,
    )  # fmt: skip
    out: dict[str, Any] = result.to_json()
    return out


def _run(live: Any, host: str, command: str, timeout_s: float) -> tuple[int, str]:
    import subprocess

    proc = live.host(host).popen(["sh", "-c", command], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return 124, out.decode(errors="replace")
    return int(proc.returncode), out.decode(errors="replace")


def _health(live: Any, method: str, sub: str) -> str | None:
    problem: str | None = live.methods.adapters[method].health(live.host(sub))
    return problem


class Subscriber:
    """One subscriber host of the lab: commands and probes from it."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.name = name

    def run(self, command: str, timeout_s: float = 60.0) -> CommandResult:
        """A shell command in the subscriber's namespace (true when it exits 0)."""
        code, out = self.lab.remote.call(_run, self.name, command, timeout_s)
        return CommandResult(code, out)

    def probe(
        self, target: str, via: str = "direct", *, kind: str = "https",
        timeout_s: float | None = None, path: str = "/", range_bytes: int = 0,
    ) -> dict[str, Any]:  # fmt: skip
        """Fetch service `target` directly or through circumvention method `via`; the record
        that results.jsonl gets (ok, outcome, curl_exit, timings...)."""
        if via != "direct" and via in self.lab.custom:
            problem = self.lab.remote.call(_health, via, self.name)
            if problem:  # a tool that died is an error of the tool, not a censorship result
                raise ToolDied(problem)
        stamp = {"test": self.lab.current_test}
        result: dict[str, Any] = self.lab.remote.call(
            _probe, self.name, target, via, kind, timeout_s, path, range_bytes, stamp
        )
        self.lab.probes.append(result)
        return result

    def gets_through(self, target: str, via: str = "direct", **kw: Any) -> Check:
        """The page of `target` arrives whole (HTTP 200, the service's own page)."""
        r = self.probe(target, via, **kw)
        return Check(bool(r["ok"]), f"{target} gets through via {via}", _seen(r))

    def is_blocked(self, target: str, how: str = "any", via: str = "direct", **kw: Any) -> Check:
        """The fetch fails, and (`how`) by a reset, by a timeout, or in `any` way."""
        if how not in ("reset", "timeout", "any"):
            raise ValueError(f"how={how!r}: 'reset', 'timeout' or 'any'")
        r = self.probe(target, via, **kw)
        failed = not r["ok"]
        outcome, stderr = str(r.get("outcome", "")), str(r.get("stderr", "")).lower()
        reset = "reset" in outcome or "reset by peer" in stderr
        timeout = outcome == "timeout" or r.get("curl_exit") == 28
        matched = failed and {"any": True, "reset": reset, "timeout": timeout}[how]
        return Check(matched, f"{target} is blocked ({how}) via {via}", _seen(r))

    def goodput(self, target: str, via: str = "direct", size: int = 4 << 20, **kw: Any) -> float:
        """Bits per second of a `size`-byte transfer of `target`'s /bulk (0.0 when it failed)."""
        r = self.probe(target, via, path="/bulk", range_bytes=size, **kw)
        speed = r.get("speed_download_bps") if r["ok"] else None
        return float(speed) * 8 if speed else 0.0


def _seen(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("outcome", "curl_exit", "http_code", "time_total_s", "target")
    seen = {k: r.get(k) for k in keys}
    extra = r.get("extra") or {}
    seen["stderr"] = extra.get("stderr") or r.get("stderr")
    return seen


class ToolDied(AssertionError):
    """The user's server or client exited while the lab ran (the message has its log)."""


class Tool:
    """A `kind: custom` method of the lab: the user's server (in its cloud) and clients."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.name = name

    def alive(self, subscriber: str | None = None) -> bool:
        sub = subscriber or self.lab.subscribers[0]
        return self.lab.remote.call(_health, self.name, sub) is None

    def log(self, side: str = "server") -> str:
        """The text of the tool's logs of one side (every host's, one after another)."""
        assert self.lab.run_dir is not None
        folder = self.lab.run_dir / "methods" / self.name
        return "".join(p.read_text(errors="replace") for p in sorted(folder.glob(f"{side}.*.log")))


def _set_profile(live: Any, name: str, isp: str | None) -> None:
    live.set_profile(name, isp=isp)


def _push(live: Any, entries: list[str] | None, add: list[str], isp: str | None) -> None:
    from tspulab.dpi.registry import Registry
    from tspulab.scenario.build import build_registry

    registry = Registry()
    if entries is None:
        registry.merge(build_registry(live.scenario) if not add else live.registry)
    for entry in [*(entries or []), *add]:
        registry.add(entry, source="pytest")
    live.push_registry(registry, isp=isp)


def _verdicts(live: Any, since: float) -> list[dict[str, Any]]:
    import json

    from tspulab.contracts import EVENTS_FILE

    out = []
    if live.tspu:
        live.controller_stats()  # the controller writes its event log in batches: flush it first
    path = live.run_dir / EVENTS_FILE
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in ("verdict", "detect") and event.get("t", 0) >= since:
            out.append(event)
    return out


def _addresses(live: Any, via: str | None, target: str | None) -> set[str]:
    found: set[str] = set()
    if via and via != "direct":
        found.update(live.methods.addresses(via))
    if target:
        found.add(live.addresses[target])
    return found


class Lab:
    """The lab of one scenario under one profile, as a test sees it."""

    def __init__(self, remote: Any, scenario: Any, profile: str | None) -> None:
        self.remote = remote
        self.scenario = scenario
        self.profile = profile
        self.run_dir: Path | None = remote.run_dir
        hosts = scenario.subscriber_hosts()
        self.subscribers: list[str] = [h for isp in hosts.values() for h in isp]
        self.custom = [m.name for m in scenario.circumvention if m.kind == "custom"]
        self.current_test = ""
        self.test_started = 0.0
        self.probes: list[dict[str, Any]] = []
        self.changed = False

    def subscriber(self, name: str | None = None) -> Subscriber:
        if name is not None and name not in self.subscribers:
            raise KeyError(f"no subscriber {name!r} (the lab has {', '.join(self.subscribers)})")
        return Subscriber(self, name or self.subscribers[0])

    def tool(self, name: str | None = None) -> Tool:
        if not self.custom:
            raise KeyError("the scenario has no kind: custom method")
        if name is not None and name not in self.custom:
            raise KeyError(f"no custom method {name!r} (custom: {', '.join(self.custom)})")
        return Tool(self, name or self.custom[0])

    def set_profile(self, name: str, isp: str | None = None) -> None:
        """Switch the TSPU (of one ISP, or every ISP) to another profile, from the next flow."""
        self.changed = True
        self.remote.call(_set_profile, name, isp)

    def push_registry(self, entries: list[str], isp: str | None = None) -> None:
        """Replace the registry with these entries (addresses, prefixes, domain patterns)."""
        self.changed = True
        self.remote.call(_push, list(entries), [], isp)

    def block(self, *entries: str, isp: str | None = None) -> None:
        """Add entries to the registry the TSPU enforces now."""
        self.changed = True
        self.remote.call(_push, None, list(entries), isp)

    def detected_by(
        self, detector: str, via: str | None = None, target: str | None = None
    ) -> Check:
        """Since the test started, the TSPU acted on (or flagged) a flow of method `via` (or to
        service `target`; any flow if neither) by rule, protocol or detector `detector`."""
        addresses = self.remote.call(_addresses, via, target)
        events = self.remote.call(_verdicts, self.test_started)
        hits = []
        for e in events:
            server = (e.get("flow") or {}).get("server")
            if addresses and server not in addresses:
                continue
            verdict = e.get("verdict") or {}
            acted = e.get("event") == "detect" or verdict.get("action") != "allow"
            names = {verdict.get("rule"), e.get("protocol"), e.get("rule"), e.get("detector")}
            if acted and detector in names:
                hits.append(e)
        seen = {"verdicts": len(events), "matching": len(hits), "first": hits[0] if hits else None}
        return Check(bool(hits), f"detected by {detector}", seen)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(live, *args)` inside the lab's sandbox (`live`: tspulab.scenario.live.LiveLab)."""
        return self.remote.call(fn, *args, **kwargs)

    # --- per test -------------------------------------------------------------------------------

    def begin(self, nodeid: str) -> None:
        self.current_test, self.test_started, self.probes = nodeid, time.time(), []

    def end(self) -> None:
        """Put back what the test changed (the scenario's registry and profiles)."""
        if not self.changed:
            return
        self.changed = False
        self.remote.call(_push, None, [], None)
        for isp in self.scenario.effective_isps():
            if isp.profile:
                self.remote.call(_set_profile, isp.profile, isp.name)

    def failure_text(self) -> str:
        assert self.run_dir is not None
        lines = [f"run directory: {self.run_dir}"]
        pcaps = sorted(self.run_dir.glob("*.pcap"))
        lines += [f"capture: {p}" for p in pcaps]
        lines.append(f"tool logs: {self.run_dir / 'methods'}")
        lines.append(f"report (written at teardown): {self.run_dir / 'report.html'}")
        lines.append("probes of this test:")
        for r in self.probes:
            stderr = str(_seen(r).get("stderr") or "")[:120]
            lines.append(f"  {r.get('subscriber')} -> {r.get('target')} [{r.get('outcome')}] "
                         f"curl {r.get('curl_exit')} {stderr}")  # fmt: skip
        try:
            events = self.remote.call(_verdicts, self.test_started, timeout_s=30)
        except Exception as err:  # the lab may be what failed
            events, lines = [], [*lines, f"(no verdicts: {err})"]
        acted = [e for e in events if (e.get("verdict") or {}).get("action") != "allow"]
        lines.append(f"TSPU verdicts during the test: {len(events)}, acting: {len(acted)}")
        for e in acted[:20]:
            f, v = e.get("flow") or {}, e.get("verdict") or {}
            lines.append(f"  {f.get('client')}:{f.get('client_port')} -> {f.get('server')}:"
                         f"{f.get('server_port')} {e.get('protocol')} sni={e.get('sni')} "
                         f"{v.get('action')} rule={v.get('rule')} ({v.get('reason')})")  # fmt: skip
        for name in self.custom:
            for log in sorted((self.run_dir / "methods" / name).glob("*.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                lines.append(f"{log.name}:\n    " + "\n    ".join(tail or ["(empty)"]))
        return "\n".join(lines)
