"""The lab shell's commands: Mininet CLI style host lines and tspulab's own commands.

A line whose first word names a node runs the rest in that node's network namespace, attached to
the terminal (so `sub1 tcpdump -c 5 -n` prints as it captures and Ctrl-C stops it); other node
names in the command become their addresses, as in Mininet's CLI (`sub1 ping -c1 r1`). Host
commands see `RUN` (the run directory) and curl/OpenSSL trust the run's CA, so `sub1 curl
https://twitter.com/` verifies like a browser of the lab would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from tspulab.contracts import EVENTS_FILE
from tspulab.controllers.events import FLUSH_INTERVAL_S
from tspulab.dpi.profile import profile_names
from tspulab.dpi.registry import Registry
from tspulab.lab.ofctl import parse_dump_flows
from tspulab.scenario.live import LiveLab
from tspulab.scenario.timeline_runner import registry_without
from tspulab.shell.completion import PROBE_KINDS, Completion
from tspulab.shell.switchtools import ovs_ofctl, start_tcpdump
from tspulab.shell.views import flow_lines, meter_lines, read_events, verdict_lines
from tspulab.topologies.multi_isp import TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT

#: Columns of the summary table when the output is not a terminal.
REPORT_WIDTH = 150
#: Below this a transfer's speed says more about its start-up than about the path.
GOODPUT_MIN_BYTES = 8_192


class ShellError(Exception):
    """A command's input is wrong: the message says what and how to write it."""


class TerminalLost(BaseException):
    """The terminal hung up (SIGHUP, or end of input from a terminal that is gone). Not a
    KeyboardInterrupt, so nothing treats it as a Ctrl-C that cancels one command: it ends the
    session."""


def terminal_gone(fd: int = 0) -> bool:
    """A hung-up terminal answers every ioctl with EIO (a Ctrl-D at a live one does not)."""
    if not os.isatty(fd):
        return False
    try:
        os.tcgetpgrp(fd)
    except OSError:
        return True
    return False


class LabShell(Completion):
    intro = ""
    prompt = "tspulab> "
    doc_header = "commands (help COMMAND for more; any node name runs a command there: sub1 ip a)"

    def __init__(self, live: LiveLab, *, batch: bool = False) -> None:
        super().__init__()
        self.live = live
        self.batch = batch
        if batch:
            self.use_rawinput = False
            self.prompt = ""
        self.started = time.time()
        self.registries = {isp.name: Registry().merge(live.registry) for isp in live.isps}
        self.profiles = {isp.name: isp.profile for isp in live.isps}
        self.captures: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.capture_count = 0
        self.env = dict(os.environ)
        self.env.update(
            # tspulab itself (replay, strategies) from `!` and host commands, as in the venv
            PATH=os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")]),
            RUN=str(live.run_dir),
            CURL_CA_BUNDLE=str(live.ca.ca_path),
            SSL_CERT_FILE=str(live.ca.ca_path),
        )

    # --- the loop ---------------------------------------------------------------------------

    def precmd(self, line: str) -> str:
        if self.batch:
            print(f"tspulab> {line.rstrip()}", flush=True)  # a transcript, as on a terminal
        return line

    def onecmd(self, line: str) -> bool:
        line = line.strip()
        if not line or line.startswith("#"):
            return False
        try:
            return bool(super().onecmd(line))
        except ShellError as err:
            print(f"error: {err}")
        except (OSError, ValueError, RuntimeError) as err:
            print(f"error: {type(err).__name__}: {err}")
        return False

    def emptyline(self) -> bool:
        return False  # cmd's default repeats the last command: surprising for `registry add`

    def default(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        if name not in self.node_names():
            print(f"unknown command or node {name!r} (help lists commands; nodes lists nodes)")
            return
        if not rest.strip():
            print(f"usage: {name} COMMAND (runs COMMAND in {name}'s network namespace)")
            return
        self.run_in_node(name, self.with_addresses(rest))

    def do_EOF(self, _arg: str) -> bool:
        """Ctrl-D: leave the shell and tear the lab down."""
        if terminal_gone():
            raise TerminalLost("end of input: the terminal hung up")
        print()
        return True

    def do_exit(self, _arg: str) -> bool:
        """exit: leave the shell and tear the lab down (so do quit and Ctrl-D)."""
        return True

    do_quit = do_exit

    # --- nodes ------------------------------------------------------------------------------

    def node_names(self) -> list[str]:
        """Scenario names (subscribers, clouds) first, then the Mininet names of every node."""
        live = self.live
        net = live.lab.net
        mininet = [n.name for n in net.hosts] + [s.name for s in net.switches] if net else []
        return list(dict.fromkeys([*live.host_of, *live.cloud_hosts, *mininet]))

    def node(self, name: str) -> Any:
        try:
            return self.live.host(name)
        except KeyError:
            raise ShellError(f"no node {name!r} (nodes lists them)") from None

    def with_addresses(self, command: str) -> str:
        """Mininet's CLI rule: a word that names a host stands for its address."""
        words = command.split(" ")
        names = {n for n in self.node_names() if not self.is_switch(n)}  # switches have no address
        out = []
        for word in words:
            if word in names:
                ip = self.node(word).IP()
                out.append(ip if ip else word)
            else:
                out.append(word)
        return " ".join(out)

    def is_switch(self, name: str) -> bool:
        net = self.live.lab.net
        return net is not None and any(s.name == name for s in net.switches)

    def run_in_node(self, name: str, command: str) -> int:
        """Run `command` with bash in the node's namespace, on this terminal; Ctrl-C reaches it
        (same process group) and the shell waits until it has ended."""
        node = self.node(name)
        sys.stdout.flush()
        proc = node.popen(
            ["bash", "-c", command], mncmd=["mnexec", "-a", str(node.pid)],
            stdin=None, stdout=None, stderr=None, env=self.env,
        )  # fmt: skip
        return self._wait(proc)

    def _wait(self, proc: subprocess.Popen[Any]) -> int:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            try:
                return proc.wait(timeout=2)  # the terminal's Ctrl-C reached it too
            except subprocess.TimeoutExpired:
                return _end(proc)
        except BaseException:  # the session ends (hangup, SIGTERM): so does the command
            _end(proc)
            raise

    def do_nodes(self, _arg: str) -> None:
        """nodes: every node, with its addresses (subscribers, clouds, routers, DNS, switches)."""
        live = self.live
        for name in self.node_names():
            alias = live.host_of.get(name) or live.cloud_hosts.get(name)
            label = f"{name} ({alias})" if alias and alias != name else name
            if self.is_switch(name):
                tspu = [i.name for i in live.isps if live.tspu_switch_of(i.name) == name]
                print(f"{label:<22} switch" + (f", TSPU of {tspu[0]}" if tspu else ""))
                continue
            ips = [i.IP() for i in live.host(name).intfList() if i.IP()]
            print(f"{label:<22} {' '.join(ips)}")

    def do_sh(self, arg: str) -> None:
        """sh COMMAND (or !COMMAND): run COMMAND in the lab's own namespace (where the switches
        are), e.g. !tspulab replay --profile tspu-2022 $RUN/capture-isp-1-subscriber.pcap"""
        if not arg.strip():
            raise ShellError("usage: sh COMMAND")
        sys.stdout.flush()
        self._wait(subprocess.Popen(["bash", "-c", arg], env=self.env))

    do_shell = do_sh  # cmd turns "!..." into "shell ..."

    def do_py(self, arg: str) -> None:
        """py EXPRESSION: evaluate Python with `live` (the LiveLab), `net` (Mininet) and the
        nodes by name in scope, as Mininet's CLI does: py live.controller_stats()"""
        if not arg.strip():
            raise ShellError("usage: py EXPRESSION")
        scope: dict[str, Any] = {"live": self.live, "net": self.live.lab.net, "shell": self}
        scope.update({name: self.live.host(name) for name in self.node_names()})
        try:
            result = eval(arg, scope)  # the user's own lab, as in Mininet's py
        except Exception as exc:  # the user's expression: show the error, keep the shell
            print(f"error: {type(exc).__name__}: {exc}")
            return
        if result is not None:
            print(result)

    def do_services(self, _arg: str) -> None:
        """services: each service with its role, cloud, address, names, and whether its address
        is in the (first ISP's) registry."""
        registry = self.registries[self.live.isps[0].name]
        for s in self.live.scenario.services:
            address = self.live.addresses[s.name]
            entry = registry.contains_address(address)
            listed = f"  listed: {entry.network} ({entry.source})" if entry else ""
            print(
                f"{s.name:<16} {s.role:<9} {s.cloud or '-':<12} {address:<16} "
                f"{','.join(s.domains)}{listed}"
            )

    # --- probes and verdicts -------------------------------------------------------------------

    def do_probe(self, arg: str) -> None:
        """probe SUB SERVICE [METHOD] [KIND] [bytes=N]: fetch SERVICE's page from subscriber SUB
        as the runner does (directly, or through circumvention METHOD; KIND https, http or ping);
        bytes=N fetches the first N bytes of the service's /bulk file instead (goodput)."""
        words = arg.split()
        if len(words) < 2:
            raise ShellError("usage: probe SUB SERVICE [METHOD] [https|http|ping] [bytes=N]")
        sub, service, *more = words
        sizes = [w for w in more if w.startswith("bytes=")]
        more = [w for w in more if not w.startswith("bytes=")]
        size = sizes[-1].removeprefix("bytes=") if sizes else "0"
        if not size.isdigit() or int(size) > 64 * 1024 * 1024:
            raise ShellError(f"bytes={size}: a number of bytes up to 67108864")
        range_bytes = int(size)
        live = self.live
        if sub not in live.host_of:
            raise ShellError(f"no subscriber {sub!r} (one of {', '.join(live.host_of)})")
        try:
            live.scenario.service(service)
        except KeyError:
            names = ", ".join(s.name for s in live.scenario.services)
            raise ShellError(f"no service {service!r} (one of {names})") from None
        kind = next((w for w in more if w in PROBE_KINDS), "https")
        methods = [w for w in more if w not in PROBE_KINDS]
        method = methods[0] if methods else "direct"
        known = ["direct", *(c.name for c in live.scenario.circumvention)]
        if method not in known:
            raise ShellError(f"no method {method!r} in this scenario (one of {', '.join(known)})")
        r = live.probe(
            sub, service, method=method, kind=kind, stamp={"source": "shell"},
            path="/bulk" if range_bytes else "/", range_bytes=range_bytes,
        )  # fmt: skip
        figures = []
        if r.http_code:
            figures.append(f"HTTP {r.http_code}")
        if r.time_starttransfer_s:  # curl reports 0 when no byte came
            figures.append(f"ttfb {r.time_starttransfer_s * 1000:.1f} ms")
        if r.size_download:
            figures.append(f"{r.size_download} B")
        if r.speed_download_bps and (r.size_download or 0) >= GOODPUT_MIN_BYTES:
            figures.append(f"{r.speed_download_bps * 8 / 1000:.0f} kbit/s")
        if r.curl_exit:
            figures.append(f"curl exit {r.curl_exit}")
        status = "ok" if r.ok else f"FAILED {r.outcome}"
        print(f"{sub} → {service} via {method} ({kind}): {status}  {', '.join(figures)}")

    def do_verdicts(self, arg: str) -> None:
        """verdicts [N|all] [ISP]: the controller's last N (default 10) decisions, with the
        detector and rule that fired (one ISP's, or every ISP's). Address blocks are switch
        rules, not decisions: see flows."""
        words = arg.split()
        isps = [w for w in words if w in self.live.isp_index]
        counts = [w for w in words if w not in isps]
        word = counts[0] if counts else "10"
        if len(counts) > 1 or (word != "all" and not word.isdigit()):
            raise ShellError(f"usage: verdicts [N|all] [ISP] (ISPs: {', '.join(self.registries)})")
        # The controller writes its events in batches every FLUSH_INTERVAL_S: wait for the
        # batch that holds the decisions of the command just run.
        time.sleep(2 * FLUSH_INTERVAL_S)
        events = read_events(self.live.run_dir / EVENTS_FILE)
        if isps:
            events = [e for e in events if e.get("tspu") in isps]
        lines = verdict_lines(events, self.started, None if word == "all" else int(word))
        print("\n".join(lines) if lines else "(no verdicts yet)")

    def do_flows(self, arg: str) -> None:
        """flows [ISP|SWITCH] [all]: the TSPU switch's rules by kind with packet and byte counters
        (every judged rule; `all` lists every rule), then its meters with their counters."""
        words = arg.split()
        show_all = "all" in words
        words = [w for w in words if w != "all"]
        switch = self.tspu_switch(words[0] if words else None)
        flows = parse_dump_flows(self.live.lab.dump_flows(switch))
        print(f"{switch}:")
        print("\n".join(flow_lines(flows, show_all=show_all)))
        print(
            "\n".join(
                meter_lines(ovs_ofctl("dump-meters", switch), ovs_ofctl("meter-stats", switch))
            )
        )

    def tspu_switch(self, name: str | None) -> str:
        live = self.live
        if name is None:
            return live.tspu_switch
        if name in live.isp_index:
            return live.tspu_switch_of(name)
        switches = {live.tspu_switch_of(isp.name) for isp in live.isps}
        if name in switches:
            return name
        raise ShellError(f"no TSPU {name!r} (ISPs: {', '.join(live.isp_index)})")

    # --- acting on the TSPU -------------------------------------------------------------------

    def do_registry(self, arg: str) -> None:
        """registry add|remove ENTRY [ISP]: list or delist an address, prefix or domain pattern
        (*.example.com) and push the new version to the TSPU(s) at once;
        registry check ADDRESS|NAME: which entry (and source) lists it; registry: counts."""
        words = arg.split()
        if not words:
            for isp, reg in self.registries.items():
                print(
                    f"{isp}: {reg.address_count(4):,} IPv4 addresses in "
                    f"{len(reg.aggregated_prefixes())} prefixes, {reg.domain_count()} domain rules"
                )
            return
        if words[0] == "check" and len(words) == 2:
            self._registry_check(words[1])
            return
        if words[0] not in ("add", "remove") or len(words) not in (2, 3):
            raise ShellError("usage: registry [add|remove ENTRY [ISP] | check ADDRESS|NAME]")
        op, entry = words[0], words[1]
        targets = [words[2]] if len(words) == 3 else list(self.registries)
        for isp in targets:
            if isp not in self.registries:
                raise ShellError(f"no ISP {isp!r} (one of {', '.join(self.registries)})")
        change = Registry()
        change.add(entry, source="shell")
        for isp in targets:
            current = self.registries[isp]
            new = Registry().merge(current).merge(change) if op == "add" else None
            if new is None:
                new = registry_without(current, change)
            reply = self.live.push_registry(new, isp=isp)
            self.registries[isp] = new
            print(
                f"{isp}: registry {op} {entry}: +{reply.get('added', 0)} "
                f"−{reply.get('removed', 0)} prefixes; {new.address_count(4):,} addresses, "
                f"{new.domain_count()} domain rules"
            )

    def _registry_check(self, what: str) -> None:
        for isp, reg in self.registries.items():
            try:
                entry = reg.contains_address(what)
            except ValueError:
                rule = reg.match_domain(what)
                found = f"{rule.pattern} ({rule.kind}, {rule.source})" if rule else None
            else:
                found = f"{entry.network} ({entry.source})" if entry else None
            print(f"{isp}: {what} " + (f"is listed: {found}" if found else "is not listed"))

    def do_profile(self, arg: str) -> None:
        """profile [NAME [ISP]]: switch the TSPU's behaviour profile live (every ISP's, or one);
        without NAME, each ISP's current profile."""
        words = arg.split()
        if not words:
            for isp_name, current in self.profiles.items():
                print(f"{isp_name}: {current}")
            return
        name = words[0]
        isp = words[1] if len(words) > 1 else None
        if name not in profile_names():
            raise ShellError(f"no profile {name!r} (one of {', '.join(profile_names())})")
        if isp is not None and isp not in self.profiles:
            raise ShellError(f"no ISP {isp!r} (one of {', '.join(self.profiles)})")
        reply = self.live.set_profile(name, isp=isp)
        for target in [isp] if isp else list(self.profiles):
            self.profiles[target] = name
        print(f"profile {name} on {isp or ', '.join(self.profiles)}: {_reply_text(reply)}")

    def do_capture(self, arg: str) -> None:
        """capture start [ISP] | stop: record both ports of the TSPU (subscriber side: what
        subscribers sent and got; upstream side: what passed the TSPU) into the run directory."""
        words = arg.split()
        if words[:1] == ["start"]:
            self._capture_start(words[1] if len(words) > 1 else None)
        elif words == ["stop"]:
            self._capture_stop()
        else:
            raise ShellError("usage: capture start [ISP] | capture stop")

    def _capture_start(self, isp: str | None) -> None:
        if self.captures:
            raise ShellError("a capture is running: capture stop first")
        live = self.live
        isp = isp or live.isps[0].name
        switch = self.tspu_switch(isp)
        self.capture_count += 1
        for side, port in (("subscriber", TSPU_SUBSCRIBER_PORT), ("upstream", TSPU_UPSTREAM_PORT)):
            path = live.run_dir / f"capture-{isp}-{self.capture_count}-{side}.pcap"
            proc = start_tcpdump(f"{switch}-eth{port}", path, live.run_dir / "tcpdump-shell.log")
            live.record.process(proc.pid, f"tcpdump {isp} {side}", group_leader=True)
            self.captures.append((side, proc, path))
            print(f"capturing {switch}-eth{port} ({side} side) → {path}")

    def _capture_stop(self) -> None:
        if not self.captures:
            raise ShellError("no capture is running (capture start)")
        time.sleep(0.2)  # the last packets reach the file
        for _side, proc, path in self.captures:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            size = path.stat().st_size if path.exists() else 0
            print(f"wrote {path} ({size} bytes)")
        self.captures = []

    def stop_captures(self) -> None:
        if self.captures:
            self._capture_stop()

    def do_report(self, _arg: str) -> None:
        """report: write the report of what was measured so far (report.html, summary.json,
        junit.xml when the scenario has expect:) and print its summary."""
        from tspulab.metrics.report import print_summary, write_report
        from tspulab.scenario.runner import summarise_run

        summary = summarise_run(self.live, {"source": "tspulab shell"})
        report = write_report(self.live.run_dir)
        # Not a terminal (a script piped in): a width that keeps each figure on one line.
        console = None if sys.stdout.isatty() else Console(width=REPORT_WIDTH)
        print_summary(summary, self.live.run_dir, console)
        for r in report.expectations:
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.message}")
        print(f"report: {report.path}")


def _end(proc: subprocess.Popen[Any]) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _reply_text(reply: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in reply.items() if k != "ok") or "done"
