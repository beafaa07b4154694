"""What a TSPU sees of each tool's real traffic: a capture at the server's interface, replayed
through the DPI engine under the profiles that target circumvention (the same engine the live
controller runs, so these are the verdicts the lab gives; docs/methods.md has the table).

The capture is taken where a TSPU sits (between subscriber and server) while the tool's own
client fetches a page through its server. Replaying it is what `tspulab parity` does with a lab
capture; the live lab's verdicts on the same tools are the lab integration's to show.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import pytest

from tests.emulation.methods.cases import BY_ID, running
from tests.emulation.methods.conftest import SUBSCRIBER_IP, TARGET_NAME, World
from tspulab.dpi.classify import Protocol
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.engine_replay import ProfileReplay, replay_with_profile
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.profile import PROFILES_DIR, load_profile, load_profile_text
from tspulab.dpi.registry import Registry
from tspulab.methods.probe import probe_through
from tspulab.methods.process import Processes, wait_log


def capture(world: World, case_id: str) -> Path:
    """The tool's traffic between subscriber and server while one page is fetched through it."""
    pcap = world.run_dir / f"{case_id}.pcap"
    procs = Processes(world.run_dir / "captures", world.record)
    dump = procs.start(
        world.srv,
        ["tcpdump", "-i", world.server_dev, "-n", "-U", "--immediate-mode", "-s", "0", "-w", str(pcap),
         "not arp and not icmp6"],
        f"tcpdump-{case_id}",
    )  # fmt: skip
    try:
        wait_log(dump, r"listening on", tool="tcpdump", timeout_s=10)
        with running(world, BY_ID[case_id], name=f"dpi-{case_id}") as (_, access):
            page = probe_through(
                world.sub, access, world.url, method=case_id, timeout_s=15, ca=world.ca.ca_path
            )
            assert page.ok, f"{case_id}: {page.outcome} {page.stderr}"
        time.sleep(0.3)
    finally:
        procs.stop()
    return pcap


def replay(pcap: Path, profile: str) -> ProfileReplay:
    """Under `profile`, with the target's name in the registry (so SNI rules have a name to
    match: a tool that shows the target's SNI on the wire gets caught by it)."""
    registry = Registry()
    registry.add_domain(TARGET_NAME, MatchKind.EXACT, source="test")
    engine = TspuEngine(
        load_profile(profile), registry, [ipaddress.ip_network(f"{SUBSCRIBER_IP}/32")]
    )
    return replay_with_profile(read_capture(str(pcap)), engine)


def tool_flows(result: ProfileReplay, *ports: int) -> list[tuple[str | None, str]]:
    """(protocol, verdict) of the flows to the method's ports (Tor: to every relay)."""
    out = []
    for fv in result.flows:
        record = fv.to_json()
        if any(str(record["server"]).endswith(f":{port}") for port in ports):
            out.append((record["protocol"], fv.verdict.short().split()[0]))
    return out


# case -> (protocol the engine names, verdict under vpn-protocols-2023, under vpn-detect-2025,
#          under tspu-2022 with the target's name in the registry)
EXPECTED: dict[str, tuple[str | None, str, str, str]] = {
    # The hard-reset opcodes are in clear even with tls-crypt: the fingerprint still matches.
    "openvpn-udp": ("openvpn", "drop", "detect", "allow"),
    "openvpn-tcp": ("openvpn", "drop", "detect", "allow"),
    "openvpn-udp-tls-crypt": ("openvpn", "drop", "detect", "allow"),
    "openvpn-tcp-tls-crypt": ("openvpn", "drop", "detect", "allow"),
    "wireguard": ("wireguard", "drop", "detect", "allow"),
    # No plaintext at all: only the 2025 fully-encrypted heuristic sees these.
    "ss-chacha20": ("fully-encrypted", "allow", "detect", "allow"),
    "ss-aes-256-gcm": ("fully-encrypted", "allow", "detect", "allow"),
    "ss-2022-aes-128": ("fully-encrypted", "allow", "detect", "allow"),
    "ss-2022-chacha20": ("fully-encrypted", "allow", "detect", "allow"),
    "vmess": ("fully-encrypted", "allow", "detect", "allow"),
    "vmess-chacha20": ("fully-encrypted", "allow", "detect", "allow"),
    "tor-obfs4": ("fully-encrypted", "allow", "detect", "allow"),
    # TLS with an innocent SNI: no SNI rule matches.
    "trojan": ("tls", "allow", "allow", "allow"),
    "stunnel": ("tls", "allow", "allow", "allow"),
    "tor": ("tls", "allow", "allow", "allow"),
    # hysteria2 is QUIC v1 on port 443: tspu-2022's first-datagram rule (docs/tspu-behaviour.md
    # §5.3) drops it; salamander hides the header; TUIC here listens on 4443 (the rule is 443-only).
    "hysteria2": ("quic", "allow", "allow", "drop"),
    "hysteria2-salamander": ("unknown", "allow", "allow", "allow"),
    "ssh": ("ssh", "allow", "allow", "allow"),
    "ssh-aes-gcm": ("ssh", "allow", "allow", "allow"),
    # Plain proxies carry the subscriber's own ClientHello in clear: SNI-IV drops it.
    "socks5-microsocks": ("tls", "allow", "allow", "drop"),
    "socks5-dante": ("tls", "allow", "allow", "drop"),
    # The CONNECT request and the proxy's 200 do not decide the flow; the ClientHello inside does.
    "http-connect": ("tls", "allow", "allow", "drop"),
    "iodine": ("dns", "allow", "allow", "allow"),
    # IKEv2 on 500, then IKE and ESP in UDP on 4500: the engine has no IKE or ESP analyzer (a
    # profile that classifies UDP names the 4500 flow "unknown"); no rule acts on it.
    "ipsec": ("unknown", "allow", "allow", "allow"),
    # The target's name travels only inside TLS (Host); the SNI is the innocent front.
    "fronting": ("tls", "allow", "allow", "allow"),
}
PROFILES = ("vpn-protocols-2023", "vpn-detect-2025", "tspu-2022")
#: Ports a tool uses besides the method's own (IPsec moves to NAT-T after IKE_SA_INIT).
MORE_PORTS = {"ipsec": (4500,)}


def size_patterns(pcap: Path, *ports: int) -> list[str]:
    """The §5.5 tunnelled-HTTPS pattern (tspulab/dpi/tunnelled_https.py) on the tool's TCP flows,
    under tunnelled-https-2024 with its range and port conditions taken out (the lab's server
    is on neither): "match" or "no", and the first payload sizes (client +, server -)."""
    text = (PROFILES_DIR / "tunnelled-https-2024.yaml").read_text()
    anywhere = re.sub(r"\n      (server_in|server_ports): .*", "", text)
    engine = TspuEngine(
        load_profile_text(anywhere, "anywhere.yaml"), Registry(),
        [ipaddress.ip_network(f"{SUBSCRIBER_IP}/32")],
    )  # fmt: skip
    out = []
    for fv in replay_with_profile(read_capture(str(pcap)), engine).flows:
        record = fv.to_json()
        if record["transport"] != "tcp" or not any(
            str(record["server"]).endswith(f":{port}") for port in ports
        ):
            continue
        c = fv.classification
        matched = c is not None and c.protocol is Protocol.TUNNELLED_HTTPS
        out.append(
            ("match " + c.detail) if matched and c is not None else f"no ({record['protocol']})"
        )
    return out


@pytest.mark.parametrize("case_id", list(EXPECTED))
def test_engine_verdicts_on_real_tool_traffic(world: World, case_id: str) -> None:
    case = BY_ID[case_id]
    pcap = capture(world, case_id)
    ports = (case.port, *MORE_PORTS.get(case_id, ()))
    seen = {profile: tool_flows(replay(pcap, profile), *ports) for profile in PROFILES}
    print(f"\n{case_id}: " + "; ".join(f"{p} {v}" for p, v in seen.items()))
    print(f"{case_id} size pattern: {size_patterns(pcap, *ports)}")
    protocol, *verdicts = EXPECTED[case_id]
    # A profile runs only the analyzers its rules use, so some leave a protocol unnamed (None);
    # the ones that name it must all name the expected one.
    named = {p for flows in seen.values() for p, _ in flows if p is not None}
    assert named == {protocol}, (case_id, seen)
    for profile, verdict in zip(PROFILES, verdicts, strict=True):
        flows = seen[profile]
        assert flows, f"{case_id}: no flow to ports {ports} in {pcap}"
        assert {v for _, v in flows} == {verdict}, (case_id, profile, flows)
