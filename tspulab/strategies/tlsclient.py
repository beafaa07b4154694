"""The bench's TLS client: ``openssl s_client`` with the client strategies as its options.

OpenSSL is used rather than curl because it sends the SNI exactly as given (``-servername``: case
and trailing dot kept), takes an ALPN list of any length (the padding of ``pad``) and goes through
an HTTP CONNECT proxy (``-proxy``: the shaping proxy). It checks the server's certificate against
the bench CA and the target name, sends one HTTP/1.1 GET with ``Connection: close``, and the
trial is good when the server's page comes back. TTFB is measured from the start of the process
to the first byte of the response (it includes starting openssl, ~10-20 ms here, the same for
every strategy).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Sequence

from tspulab.strategies.spec import Step

ALPN_NAME_MAX = 255


def sent_name(target: str, steps: Sequence[Step]) -> str:
    """The host name the client puts in its SNI under the client strategies."""
    name = target
    for step in steps:
        if step.name == "sni-case":
            if step["mode"] == "upper":
                name = name.upper()
            else:
                name = "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(name))
    if any(s.name == "sni-dot" for s in steps) and not name.endswith("."):
        name += "."
    return name


def alpn_list(steps: Sequence[Step]) -> str:
    """``http/1.1``, then, for ``pad:SIZE``, protocol names adding SIZE bytes to the hello
    (so it is at least that big whatever the rest holds)."""
    names = ["http/1.1"]
    for step in steps:
        if step.name == "pad":
            left = step.num("size")
            i = 0
            while left > 0:
                chunk = min(ALPN_NAME_MAX - 4, left)
                names.append(f"p{i:03d}" + "x" * max(chunk - 5, 0))
                left -= len(names[-1]) + 1
                i += 1
    return ",".join(names)


def s_client_argv(
    server: str, target: str, ca: str, steps: Sequence[Step], proxy: str | None = None
) -> list[str]:
    argv = [
        "openssl", "s_client", "-connect", f"{server}:443",
        "-servername", sent_name(target, steps), "-alpn", alpn_list(steps),
        "-CAfile", ca, "-verify_hostname", target, "-verify_return_error", "-quiet",
    ]  # fmt: skip
    if proxy:
        argv += ["-proxy", proxy]
    return argv


def request(target: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode()


def run(
    netns_argv: Sequence[str], argv: Sequence[str], target: str, timeout: float
) -> tuple[bytes, float | None, str]:
    """(output, seconds to its first byte, stderr tail) of one s_client run."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [*netns_argv, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(request(target))
    proc.stdin.flush()
    out = b""
    first: float | None = None
    deadline = started + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        if first is None:
            first = time.monotonic() - started
        out += chunk
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()
    return out, first, err[-300:]
