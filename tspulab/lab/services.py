"""Real servers in the lab's namespaces: nginx (HTTPS and HTTP) per cloud host, dnsmasq for DNS.

Each server runs in the foreground under `mnexec` inside its host's namespace, its own session
and process group, with every file (config, pid, logs, temp dirs) in the run directory; the
record gets its PID and process group at once, so cleanup can end exactly it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tspulab.lab.netlink import listening
from tspulab.lab.pki import CertFiles, RunCA
from tspulab.lab.record import RunRecord
from tspulab.lab.sandbox_init import bind_resolv_conf
from tspulab.lab.timescale import scaled

#: Served at /bulk on every service, for transfers that show counters and throughput.
BULK_BYTES = 32 * 1024 * 1024


class ServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class Site:
    """One service as a web server sees it."""

    name: str
    domains: tuple[str, ...]
    address: str


def site_marker(name: str) -> str:
    """The body a service answers `/` with, so a probe knows which service it reached."""
    return f"tspulab service {name}"


def nginx_head(directory: Path, written_for: str, connections: int) -> str:
    """An nginx configuration up to the inside of its `http` block: one master and worker in the
    foreground, every file (PID, logs, temp paths) in `directory`; servers follow, then `}`."""
    return f"""# written by tspulab {written_for}
daemon off;
master_process on;
# Workers read run-directory files, which may sit under a private (0700) directory.
user root root;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
    default_type text/plain;"""


def _nginx_conf(directory: Path, sites: Sequence[Site], certs: dict[str, CertFiles]) -> str:
    servers = []
    for site in sites:
        cert = certs[site.name]
        servers.append(
            f"""
    server {{
        listen 443 ssl;
        listen 80;
        server_name {" ".join(site.domains)};
        ssl_certificate {cert.cert};
        ssl_certificate_key {cert.key};
        location = / {{ return 200 "{site_marker(site.name)}\\n"; }}
        location = /bulk {{ alias {directory}/bulk.bin; }}
    }}"""
        )
    default_cert = certs[sites[0].name]
    return f"""{nginx_head(directory, "for one run", connections=1024)}
    ssl_protocols TLSv1.2 TLSv1.3;
    # A name the host does not serve gets 421 Misdirected Request, not another service's page.
    server {{
        listen 443 ssl default_server;
        listen 80 default_server;
        ssl_certificate {default_cert.cert};
        ssl_certificate_key {default_cert.key};
        return 421;
    }}{"".join(servers)}
}}
"""


def wait_until_listening(host: Any, port: int, proto: str = "t", timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + scaled(timeout_s)
    while time.monotonic() < deadline:
        if listening(host, port, "tcp" if proto == "t" else "udp"):
            return True
        time.sleep(0.05)
    return False


#: Servers started by this process, so the runner can stop them before the network goes.
RUNNING: list[Any] = []


def start_logged(host: Any, argv: list[str], log: Path, record: RunRecord, name: str) -> Any:
    """Start `argv` in `host`'s namespace, output to `log`, and record it at once.

    Mininet runs it as `mnexec -da PID argv`: mnexec calls setsid() and then execs, so the PID
    stays the server's and becomes its process group (nginx's workers inherit the group, and
    cleanup ends the whole group). Do not pass start_new_session: a child that already leads a
    group makes mnexec fork, and the PID we hold would be a parent that has exited.
    """
    out = log.open("ab")
    proc = host.popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    record.process(proc.pid, name, group_leader=True)
    RUNNING.append(proc)
    return proc


def stop_process(proc: Any, timeout_s: float = 5.0) -> None:
    """End a process started as a group leader, with its whole group (nginx's workers, tor's
    obfs4proxy): SIGTERM, then SIGKILL after `timeout_s`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


def stop_servers(timeout_s: float = 5.0) -> None:
    """End every server started with `start_logged` (its whole process group), newest first."""
    while RUNNING:
        stop_process(RUNNING.pop(), timeout_s)


def start_nginx(
    host: Any, sites: Sequence[Site], ca: RunCA, run_dir: Path, record: RunRecord
) -> Any:
    directory = run_dir / "services" / host.name
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    bulk = directory / "bulk.bin"
    with bulk.open("wb") as f:
        f.truncate(BULK_BYTES)
    certs = {s.name: ca.issue(f"{host.name}-{s.name}", s.domains, [s.address]) for s in sites}
    conf = directory / "nginx.conf"
    conf.write_text(_nginx_conf(directory, sites, certs))
    check = subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServiceError(f"nginx config {conf} rejected: {check.stderr.strip()}")
    proc = start_logged(
        host, ["nginx", "-c", str(conf)], directory / "nginx.out", record, f"nginx {host.name}"
    )
    if not wait_until_listening(host, 443):
        raise ServiceError(
            f"nginx on {host.name} is not listening on 443; see {directory}/error.log"
        )
    return proc


def write_hosts_file(path: Path, records: dict[str, str]) -> None:
    """The resolver's names as a hosts file (dnsmasq re-reads it on SIGHUP: services move)."""
    path.write_text("".join(f"{addr} {name}\n" for name, addr in sorted(records.items())))


def start_dnsmasq(
    host: Any,
    address: str,
    records: dict[str, str],
    run_dir: Path,
    record: RunRecord,
    hosts_file: Path | None = None,
) -> Any:
    """An authoritative-only resolver: the scenario's names and nothing else (no upstream).

    With `hosts_file`, names come from that file, so a service can move (rewrite it, SIGHUP)."""
    directory = run_dir / "services" / host.name
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        "--bind-interfaces", f"--listen-address={address}", "--pid-file=",
        "--log-facility=-", "--log-queries", "--user=root", "--group=root",
    ]  # fmt: skip
    if hosts_file is not None:
        write_hosts_file(hosts_file, records)
        argv.append(f"--addn-hosts={hosts_file}")
    else:
        argv += [f"--host-record={name},{addr}" for name, addr in sorted(records.items())]
    proc = start_logged(host, argv, directory / "dnsmasq.log", record, f"dnsmasq {host.name}")
    if not wait_until_listening(host, 53, proto="u"):
        raise ServiceError(f"dnsmasq on {host.name} is not listening; see {directory}/dnsmasq.log")
    return proc


def resolver_timeout_s(probe_timeout_s: float) -> int:
    """The resolver's wait per try: a tenth of the probe's timeout, 1-5 s (glibc's default is 5).
    A lookup's first packet waits for the TSPU's decision; a scenario that gives probes long
    (the test VM: 60 s, an emulated CPU) gives lookups long too, and the default 3 s probe keeps
    the 1 s that makes a lab's lookups fail fast."""
    return max(1, min(5, round(probe_timeout_s / 10)))


def write_resolv_conf(run_dir: Path, dns_address: str, probe_timeout_s: float = 3.0) -> Path:
    """The scenario's resolver for every client of the run: written to the run directory and
    bind-mounted once over /etc/resolv.conf in the run's mount namespace, so a client command runs
    as it is and its queries really cross the lab. Call it before the Mininet hosts are made: each
    host's `mnexec -n` copies the mount namespace then (private propagation: later mounts stay
    out)."""
    path = run_dir / "resolv.conf"
    path.write_text(
        "# tspulab: the scenario's resolver\n"
        f"nameserver {dns_address}\n"
        f"options timeout:{resolver_timeout_s(probe_timeout_s)} attempts:2\n"
    )
    bind_resolv_conf(path)
    return path
