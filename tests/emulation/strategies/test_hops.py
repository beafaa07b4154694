"""Router hops in the lab (topologies/hops.py) and a low-TTL fake against a TSPU two hops out.

One lab (twitter-throttle-2021, `hops: {tspu: 2, border: 3}`): subscriber ─ r1h1 ─ r1h2 ─ TSPU ─
r1 (border) ─ exchange ─ cloud. Sources:
- tspu-behaviour.md §1 (CP-TSPU "Locate TSPU devices"): the TSPU within 2 hops of the target in
  70 % of located cases; ZAPRET ("TTL" bullet): the fake's TTL must be chosen per ISP, the TSPU
  may be at hop ~5 or on the backbone; GDPI README (`--set-ttl`): the fake must expire after the
  DPI and before the server.
- §6 fake row / §3 CP-THR: a first packet of >= 101 random bytes ends the 2021 throttler's
  inspection, so a random fake that *reaches the box* lets the real ClientHello through, and one
  that dies before it does not.
- §6 "Injected RST/FIN to clear state: fails" (§3 CP-THR: FIN or RST does not clear the state),
  here in the lab's switch and controller (the bench's replay test is test_state_after_rst.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dpkt
import pytest

from tests.emulation.helpers import in_sandbox
from tspulab.dpi.pcap import read_capture
from tspulab.lab.trace import describe, trace
from tspulab.parity import capture_name
from tspulab.strategies.labsweep import ADDRESS, scenario_text, sweep_lab

PROFILE = "twitter-throttle-2021"
HOPS = (2, 3)
DIES_BEFORE = "fake:ttl=2:data=random:len=120"  # TTL 0 at r1h2, the second router
EXPIRES_AFTER = "fake:ttl=3:data=random:len=120"  # TTL 1 at the box, dropped by r1 (hop 3)
BYSTANDER = "www.bystander.example"
#: Three downloads of 40 KB from the target's address: twitter.com from port 45123, ended with
#: a RST; an innocent name from the same port (the same 5-tuple) at once; the innocent name from
#: another port. Prints the seconds each took.
RST_CLIENT = """
import socket, ssl, struct, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for name, port in (("twitter.com", 45123), (sys.argv[2], 45123), (sys.argv[2], 45124)):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], port))
    s.settimeout(20)
    s.connect((sys.argv[3], 443))
    t = ctx.wrap_socket(s, server_hostname=name)
    start = time.monotonic()
    request = f"GET /bulk HTTP/1.1\\r\\nHost: {name}\\r\\nRange: bytes=0-39999\\r\\n"
    t.sendall(request.encode() + b"Connection: close\\r\\n\\r\\n")
    got = b""
    while chunk := t.recv(65536):
        got += chunk
    body = got.partition(b"\\r\\n\\r\\n")[2]
    print(name, port, len(body), round(time.monotonic() - start, 2), flush=True)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t.close()  # a RST
"""


def _lab(runs_dir: Path) -> dict[str, Any]:
    from tspulab.scenario.live import LiveLab
    from tspulab.scenario.schema import load_scenario_text

    scenario = load_scenario_text(scenario_text(PROFILE, "twitter.com", HOPS), "hops.yaml")
    with LiveLab(scenario, runs_dir, capture=True, log=lambda *_: None) as run:
        hops = trace(run.host("sub1"), ADDRESS, max_hops=8)
        results = sweep_lab(run, PROFILE, "twitter.com", [DIES_BEFORE, EXPIRES_AFTER], 2)
        run_dir = run.run_dir
        script = run_dir / "rst_client.py"
        script.write_text(RST_CLIENT)
        sub = run.host("sub1")
        rst = sub.cmd(f"{sys.executable} {script} {sub.IP()} {BYSTANDER} {ADDRESS}")
    ttls = []  # of the client's data segments to the server, as the box saw them
    server = bytes(int(x) for x in ADDRESS.split("."))
    for _, _, frame in read_capture(run_dir / capture_name("isp")):
        ip = dpkt.ethernet.Ethernet(frame).data
        tcp = getattr(ip, "data", None)
        if isinstance(ip, dpkt.ip.IP) and isinstance(tcp, dpkt.tcp.TCP) and ip.dst == server:
            ttls += [ip.ttl] if tcp.data else []
    return {
        "hops": [(h.address, h.reached) for h in hops],
        "trace": describe(hops),
        "counts": {r.strategy: r.success_count(PROFILE) for r in results},
        "why": {r.strategy: r.why(PROFILE) for r in results},
        "ttls": sorted(set(ttls)),
        "rst": {
            (name, int(port)): (int(size), float(seconds))
            for name, port, size, seconds in (
                line.split() for line in rst.splitlines() if line.count(" ") == 3
            )
        },
        "rst_output": rst,
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return in_sandbox(_lab, tmp_path_factory.mktemp("hops"))


def test_traceroute_counts_the_isp_routers(lab: dict[str, Any]) -> None:
    """Three routers answer with time-exceeded (RFC 1812 §5.3.1), the cloud at hop 4."""
    assert lab["hops"] == [
        ("10.1.0.1", False), ("10.1.1.2", False), ("10.1.2.2", False), (ADDRESS, True),
    ], lab["trace"]  # fmt: skip


def test_the_box_sees_ttls_after_two_routers(lab: dict[str, Any]) -> None:
    """Real segments left the subscriber with TTL 64 and meet the box with 62; the TTL-3 fake
    meets it with 1; the TTL-2 fake never reaches it."""
    assert lab["ttls"] == [1, 62], lab["ttls"]


def test_the_control_is_throttled(lab: dict[str, Any]) -> None:
    assert lab["counts"]["none"] == 0, lab["why"]["none"]


def test_a_fake_that_expires_after_the_tspu_gets_through(lab: dict[str, Any]) -> None:
    """§6 fake row, §3 CP-THR (>= 101 random bytes first); ZAPRET TTL bullet, GDPI --set-ttl."""
    assert lab["counts"][EXPIRES_AFTER] == 2, lab["why"][EXPIRES_AFTER]


def test_a_fake_that_expires_before_the_tspu_fails(lab: dict[str, Any]) -> None:
    """The same fake one TTL short dies at the second router: the box sees only the real
    ClientHello and polices the flow (§3 CP-THR)."""
    assert lab["counts"][DIES_BEFORE] == 0, lab["why"][DIES_BEFORE]
    assert "police" in lab["why"][DIES_BEFORE]


def test_state_survives_a_rst_in_the_lab(lab: dict[str, Any]) -> None:
    """§6 / §3 CP-THR: after a RST, a new connection on the same 5-tuple with an innocent name is
    still throttled (130 kbit/s: 40 KB take seconds); the same name from another port is not."""
    rst = lab["rst"]
    assert len(rst) == 3 and all(size == 40000 for size, _ in rst.values()), lab["rst_output"]
    assert rst[("twitter.com", 45123)][1] > 1.0, rst
    assert rst[(BYSTANDER, 45123)][1] > 1.0, rst
    assert rst[(BYSTANDER, 45124)][1] < 0.5, rst
