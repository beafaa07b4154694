"""Probes: real clients run in subscriber namespaces, their outcome as a typed record.

An HTTPS probe is one `curl` fetch of `https://<first domain of the service>/` that resolves the
name with the lab's DNS server, verifies the certificate against the run's CA only, and checks that
the body names the expected service (so reaching a different host is not counted as success).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tspulab.dpi.oldfilter import BLOCKPAGE_MARKER, BLOCKPAGE_PATH
from tspulab.lab.services import site_marker

# curl exit codes worth naming in a report (man curl, EXIT CODES).
CURL_ERRORS = {
    6: "dns-failure",
    7: "connect-failed",
    28: "timeout",
    35: "tls-handshake-failed",
    52: "empty-reply",
    56: "recv-failed (reset)",
    60: "certificate-invalid",
}


@dataclass(frozen=True)
class ProbeResult:
    """One measurement. `ok` means the right service answered 200 within the timeout."""

    kind: str
    subscriber: str
    service: str
    role: str
    target: str
    round: int
    ok: bool
    outcome: str
    started: float
    curl_exit: int | None = None
    http_code: int | None = None
    remote_ip: str | None = None
    time_namelookup_s: float | None = None
    time_connect_s: float | None = None
    time_appconnect_s: float | None = None
    time_starttransfer_s: float | None = None
    time_total_s: float | None = None
    size_download: int | None = None
    speed_download_bps: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None
    """The parts of the lab that were down when it ran ("controller down", ...), or None."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def parse_curl_output(stdout: str) -> tuple[str, dict[str, Any]]:
    """Split `curl -w '\\n%{json}'` output into (body, write-out variables)."""
    body, _, last = stdout.rstrip("\n").rpartition("\n")
    try:
        info = json.loads(last)
    except json.JSONDecodeError:
        return stdout, {}
    return body, info if isinstance(info, dict) else {}


def at_blockpage(body: str, info: dict[str, Any]) -> bool:
    """Whether curl's answer came from an ISP's block page: the page's text, or a redirect
    to its path."""
    redirect = str(info.get("redirect_url") or "")
    return BLOCKPAGE_MARKER in body or f"{BLOCKPAGE_PATH}?" in redirect


def https_probe(
    host: Any,
    *,
    subscriber: str,
    service: str,
    role: str,
    domain: str,
    ca: Path,
    timeout_s: float,
    round_no: int,
    path: str = "/",
    range_bytes: int = 0,
    socks5: str | None = None,
    scheme: str = "https",
    via: list[str] | None = None,
) -> ProbeResult:
    """`range_bytes` > 0: download that many bytes of `path` (a goodput measurement); `via`:
    curl options that send it through a circumvention method's client (`Access.curl_args`)."""
    url = f"{scheme}://{domain}{path}"
    argv = [
        "curl", "-sS", "--max-time", f"{timeout_s:g}", "--cacert", str(ca),
        "--noproxy", "*", "-w", "\\n%{json}", url,
    ]  # fmt: skip
    if path != "/":
        argv[1:1] = ["-o", "/dev/null"]
    if range_bytes:
        argv[1:1] = ["-r", f"0-{range_bytes - 1}"]
    if socks5:
        # The proxy resolves the name (socks5h), as Telegram's clients used their proxies.
        i = argv.index("--noproxy")
        del argv[i : i + 2]
        argv[1:1] = ["--socks5-hostname", socks5]
    if via is not None:
        i = argv.index("--noproxy")
        argv[i : i + 2] = via
    started = time.time()
    proc = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    body, info = parse_curl_output(stdout)
    code = proc.returncode
    http_code = info.get("http_code") or info.get("response_code")
    expected = site_marker(service)
    complete = not range_bytes or info.get("size_download") == range_bytes
    if code == 0 and http_code in (200, 206) and complete and (path != "/" or expected in body):
        outcome, ok = "ok", True
    elif code == 0 and at_blockpage(body, info):
        # an ISP's old filter answered in the server's place: its 302 to the block page, or the
        # page itself (tspulab.dpi.oldfilter); http_code keeps which
        outcome, ok = "blockpage", False
    elif code == 0:
        outcome, ok = f"http-{http_code}" if http_code != 200 else "wrong-service", False
    elif "reset by peer" in stderr:
        # A RST ended it (SNI-I's rewritten reply, or an injected RST): not a timeout.
        outcome, ok = "reset", False
    else:
        outcome, ok = CURL_ERRORS.get(code, f"curl-exit-{code}"), False
    return ProbeResult(
        kind="transfer" if range_bytes else scheme,
        subscriber=subscriber,
        service=service,
        role=role,
        target=url,
        round=round_no,
        ok=ok,
        outcome=outcome,
        started=started,
        curl_exit=code,
        http_code=http_code if isinstance(http_code, int) else None,
        remote_ip=info.get("remote_ip") or None,
        time_namelookup_s=_float(info.get("time_namelookup")),
        time_connect_s=_float(info.get("time_connect")),
        time_appconnect_s=_float(info.get("time_appconnect")),
        time_starttransfer_s=_float(info.get("time_starttransfer")),
        time_total_s=_float(info.get("time_total")),
        size_download=info.get("size_download"),
        speed_download_bps=_float(info.get("speed_download")),
        extra={"stderr": stderr.strip()[-300:]} if stderr.strip() else {},
    )


def ping_probe(
    host: Any, *, subscriber: str, service: str, role: str, address: str, timeout_s: float,
    round_no: int,
) -> ProbeResult:  # fmt: skip
    """One ICMP echo to the service's address (IP blocking drops ICMP too, §2.2 IP)."""
    started = time.time()
    proc = host.popen(
        ["ping", "-n", "-c", "1", "-W", str(max(1, round(timeout_s))), address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout_s + 10)
    except subprocess.TimeoutExpired:  # bounded: a probe never hangs the run
        proc.kill()
        out, _ = proc.communicate()
    match = re.search(r"time=([0-9.]+) ms", out.decode(errors="replace"))
    ok = proc.returncode == 0
    return ProbeResult(
        kind="ping", subscriber=subscriber, service=service, role=role, target=address,
        round=round_no, ok=ok, outcome="ok" if ok else "timeout", started=started,
        time_total_s=float(match.group(1)) / 1000 if match else None,
    )  # fmt: skip
