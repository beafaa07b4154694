"""What the method adapters write before anything runs (no root, no tools started): the server's
and client's configuration per run, keys, the probe's arithmetic and curl arguments, and the
lab glue's checks. The end-to-end tests in tests/emulation/methods prove the tools accept them."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tspulab.methods import adapter_class
from tspulab.methods.base import Access, MethodContext
from tspulab.methods.keys import X25519Pair, uuid4, write_ssh_keypair
from tspulab.methods.lab import LabMethods
from tspulab.methods.options import KIND_OPTIONS
from tspulab.methods.probe import goodput_bps
from tspulab.methods.process import MethodError
from tspulab.scenario.campaign import Circumvention


def _ctx(tmp_path: Path, kind: str, options: dict[str, Any] | None = None, **kw: Any) -> Any:
    return MethodContext(
        name=kw.pop("name", f"m-{kind}"),
        directory=tmp_path / "methods" / kw.pop("dirname", kind),
        server_address=kw.pop("address", "88.99.1.10"),
        port=kw.pop("port", 1194),
        options=KIND_OPTIONS[kind].model_validate(options or {}),
        **kw,
    )


def _prepared(tmp_path: Path, kind: str, options: dict[str, Any] | None = None, **kw: Any) -> Any:
    method = adapter_class(kind)(_ctx(tmp_path, kind, options, **kw))
    method.prepare()
    return method


def test_openvpn_configs_follow_the_options(tmp_path: Path) -> None:
    m = _prepared(tmp_path, "openvpn", {"proto": "tcp", "tls_crypt": True, "cipher": "AES-128-GCM"})
    server = (m.directory / "server.conf").read_text().splitlines()
    client = (m.directory / "client.conf").read_text().splitlines()
    assert "proto tcp4-server" in server and "proto tcp4-client" in client
    assert "data-ciphers AES-128-GCM" in server and "data-ciphers AES-128-GCM" in client
    key = m.directory / "tls-crypt.key"
    assert f"tls-crypt {key}" in server and f"tls-crypt {key}" in client
    assert "OpenVPN Static key V1" in key.read_text()
    assert "remote 88.99.1.10 1194" in client and "remote-cert-tls server" in client
    net = m.ctx.tunnel_net()
    assert f"server {net.network_address} {net.netmask}" in server
    plain = _prepared(tmp_path, "openvpn", {}, dirname="plain", name="plain")
    text = (plain.directory / "server.conf").read_text()
    assert "proto udp4\n" in text and "tls-crypt" not in text


def test_wireguard_makes_a_key_and_address_per_client(tmp_path: Path) -> None:
    m = _prepared(tmp_path, "wireguard", {"keepalive_s": 25}, port=51820, clients=3)
    server = (m.directory / "server.conf").read_text()
    assert server.count("[Peer]") == 3
    allowed = re.findall(r"AllowedIPs = (\S+)/32", server)
    assert len(set(allowed)) == 3 and all(
        ipaddress.ip_address(a) in m.ctx.tunnel_net() for a in allowed
    )
    keys = set()
    for i in range(3):
        client = (m.directory / f"client{i}.conf").read_text()
        assert "Endpoint = 88.99.1.10:51820" in client and "PersistentKeepalive = 25" in client
        private = re.search(r"PrivateKey = (\S+)", client)
        assert private is not None and len(base64.b64decode(private.group(1))) == 32
        keys.add(private.group(1))
        assert (m.directory / f"client{i}.conf").stat().st_mode & 0o077 == 0
    assert len(keys) == 3


def test_shadowsocks_2022_runs_on_sing_box_with_a_key_of_the_cipher_size(tmp_path: Path) -> None:
    aead = _prepared(tmp_path, "shadowsocks", {"cipher": "aes-256-gcm"}, dirname="a", name="a")
    assert aead.sing_box is None
    assert json.loads((aead.directory / "server.json").read_text())["method"] == "aes-256-gcm"
    for cipher, size in (("2022-blake3-aes-128-gcm", 16), ("2022-blake3-aes-256-gcm", 32)):
        m = _prepared(tmp_path, "shadowsocks", {"cipher": cipher}, dirname=cipher, name=cipher)
        assert m.sing_box is not None
        conf = json.loads((m.directory / "server.json").read_text())
        inbound = conf["inbounds"][0]
        assert inbound["method"] == cipher and len(base64.b64decode(inbound["password"])) == size
        client = json.loads((m.directory / "client.json").read_text())
        assert client["inbounds"][0]["type"] == "socks"
        assert client["outbounds"][0]["password"] == inbound["password"]


def test_hysteria2_obfs_and_tuic_congestion_control(tmp_path: Path) -> None:
    h = _prepared(tmp_path, "hysteria2", {"obfs": "salamander", "server_name": "cdn.example.org"})
    server = json.loads((h.directory / "server.json").read_text())["inbounds"][0]
    client = json.loads((h.directory / "client.json").read_text())["outbounds"][0]
    assert server["obfs"] == client["obfs"] and server["obfs"]["type"] == "salamander"
    assert client["tls"]["server_name"] == "cdn.example.org"
    assert client["tls"]["certificate_path"] == str(h.ctx.certs.ca_path)
    t = _prepared(tmp_path, "tuic", {"congestion_control": "bbr"})
    out = json.loads((t.directory / "client.json").read_text())["outbounds"][0]
    assert out["congestion_control"] == "bbr" and re.fullmatch(r"[0-9a-f-]{36}", out["uuid"])


def test_ssh_and_stunnel_and_trojan(tmp_path: Path) -> None:
    s = _prepared(tmp_path, "ssh", {"cipher": "aes256-gcm@openssh.com"}, port=2222)
    conf = (s.directory / "sshd_config").read_text()
    assert "Ciphers aes256-gcm@openssh.com" in conf and "PasswordAuthentication no" in conf
    assert (s.directory / "known_hosts").read_text().startswith("[88.99.1.10]:2222 ssh-ed25519 ")
    st = _prepared(tmp_path, "stunnel", {"server_name": "www.example.org"}, port=443)
    assert "sni = www.example.org" in (st.directory / "client.conf").read_text()
    tr = _prepared(tmp_path, "trojan", {}, port=8443)
    server = json.loads((tr.directory / "server.json").read_text())
    client = json.loads((tr.directory / "client.json").read_text())
    assert server["password"] == client["password"] and client["ssl"]["verify"] is True


def test_keys() -> None:
    pair = X25519Pair.generate()
    private, public = pair.b64url()
    assert "=" not in private and len(base64.urlsafe_b64decode(public + "=")) == 32
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid4()
    )


def test_ssh_keypair_is_openssh(tmp_path: Path) -> None:
    public = write_ssh_keypair(tmp_path / "k")
    assert public.startswith("ssh-ed25519 ")
    assert (tmp_path / "k").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_tags_interfaces_and_tables_differ_between_runs(tmp_path: Path) -> None:
    a = _ctx(tmp_path / "run1", "wireguard", name="vpn")
    b = _ctx(tmp_path / "run2", "wireguard", name="vpn")
    assert a.interface("wgs") != b.interface("wgs") and len(a.interface("wgs")) <= 15
    assert a.route_table() != b.route_table()
    assert a.tunnel_net().subnet_of(ipaddress.IPv4Network("172.16.0.0/12"))


def test_access_curl_arguments() -> None:
    assert Access(socks5="127.0.0.1:1080").curl_args() == ["--socks5-hostname", "127.0.0.1:1080"]
    assert Access(http_proxy="1.2.3.4:3128").curl_args()[-1] == "http://1.2.3.4:3128"
    assert Access(tun="wg0").curl_args()[-2:] == ["--interface", "wg0"]
    fronted = Access(front="cdn.example.com", front_address="88.99.1.10:443")
    assert fronted.curl_args()[-1] == "cdn.example.com:443:88.99.1.10:443"


def test_goodput_counts_the_body_after_the_first_byte() -> None:
    assert goodput_bps(1_000_000, 0.1, 1.1) == pytest.approx(8e6)
    # A body that came with the first byte: the whole request is the window.
    assert goodput_bps(1000, 0.050, 0.051) == pytest.approx(1000 * 8 / 0.051)
    assert goodput_bps(0, 0.1, 0.2) is None


def test_lab_refuses_a_tor_network_that_leaves_its_cloud(tmp_path: Path) -> None:
    method = Circumvention.model_validate(
        {"name": "tor", "kind": "tor", "cloud": "c", "address": "88.99.0.254",
         "options": {"relays": 4}}
    )  # fmt: skip
    lab = LabMethods([method], tmp_path, None, clients=1, log=lambda _: None)
    assert lab.addresses("tor") == ["88.99.0.254", "88.99.0.255", "88.99.1.0", "88.99.1.1"]
    with pytest.raises(MethodError, match=r"88\.99\.1\.0, 88\.99\.1\.1 not in cloud c"):
        lab.start_servers(lambda cloud: None, lambda cloud: ["88.99.0.0/24"])  # type: ignore[arg-type,return-value]


@pytest.mark.skipif(
    not (Path("/usr/bin/tor").exists() and Path("/usr/bin/tor-gencert").exists()),
    reason="tor and tor-gencert make the authorities' keys (Debian package tor)",
)
def test_tor_network_of_the_run(tmp_path: Path) -> None:
    m = _prepared(
        tmp_path, "tor", {"transport": "obfs4", "relays": 4}, address="88.99.3.1", port=9001
    )
    head = (m.directory / "client.torrc.head").read_text()
    authorities = re.findall(
        r"^DirAuthority (\S+) orport=9001 no-v2 v3ident=([0-9A-F]{40}) (\S+) ([0-9A-F]{40})$",
        head,
        re.M,
    )
    assert [a[2] for a in authorities] == ["88.99.3.1:9002", "88.99.3.2:9002", "88.99.3.3:9002"]
    assert "TestingTorNetwork 1" in head
    for i, relay in enumerate(m.relays):
        torrc = (m.directory / f"{relay.nick}.torrc").read_text()
        assert f"ORPort 88.99.3.{i + 1}:9001" in torrc and "ExitPolicy accept *:*" in torrc
        assert ("V3AuthoritativeDirectory 1" in torrc) == (i < 3)
    bridge = (m.directory / "bridge.torrc").read_text()
    assert "ServerTransportListenAddr obfs4 88.99.3.5:9001" in bridge and "BridgeRelay 1" in bridge
    assert re.fullmatch(r"[0-9A-F]{40}", m.bridge_fingerprint)
