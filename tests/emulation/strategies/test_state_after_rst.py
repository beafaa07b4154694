"""§6 "Injected RST/FIN to clear state: fails" (§3 CP-THR: FIN or RST does not clear the state).

On the live bench a client triggers (twitter.com), ends the connection with a RST (SO_LINGER 0,
so the box sees a real RST), and at once opens a new connection from the same address and port
with a harmless name. Replayed, the box keeps its verdict for that 5-tuple.
"""

from __future__ import annotations

import subprocess
import sys

import dpkt

from tspulab.dpi.pcap import read_capture
from tspulab.strategies.bench import CLIENT, SERVER, SUBSCRIBER_NET
from tspulab.strategies.verdicts import judge_capture

CLIENT_SCRIPT = f"""
import socket, ssl, struct
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for name in ("twitter.com", "www.example.com"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("{CLIENT}", 45123))
    s.connect(("{SERVER}", 443))
    t = ctx.wrap_socket(s, server_hostname=name)
    t.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    print(name, t.recv(64)[:12], flush=True)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t.close()  # a RST, not a FIN: nothing left in TIME_WAIT, the port is free again
"""


def test_a_verdict_survives_a_rst_and_a_new_connection_on_the_same_ports(bench, tmp_path) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "rst.pcap"
    with bench.capture(capture):
        out = subprocess.run(
            ["ip", "netns", "exec", bench.ns["c"], sys.executable, "-c", CLIENT_SCRIPT],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("HTTP/1.1 200") == 2
    resets = [
        eth.data for _, _, frame in read_capture(capture)
        if isinstance((eth := dpkt.ethernet.Ethernet(frame)).data, dpkt.ip.IP)
        and isinstance(eth.data.data, dpkt.tcp.TCP) and eth.data.data.flags & dpkt.tcp.TH_RST
        and eth.data.data.sport == 45123
    ]  # fmt: skip
    assert resets, "the client's RST is in the capture at the box"
    for profile, rule in (("twitter-throttle-2021", "twitter-sni"), ("tspu-2022", "sni-i")):
        first, second = judge_capture(
            capture, profile, target="twitter.com", server=SERVER, subscriber_net=SUBSCRIBER_NET
        )
        assert first.rule == rule and not first.passed, profile
        assert second.rule == rule and not second.passed, profile  # www.example.com, same ports
