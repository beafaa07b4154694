"""Tor on a private network of the run: directory authorities, relays, exits, an obfs4 bridge.

No public consensus is ever used. Like chutney (Tor's own test-network tool), the run makes a
network with `TestingTorNetwork 1`: the first three relays are v3 directory authorities (keys
from `tor-gencert`, relay fingerprints from `tor --list-fingerprint`), every relay may be a guard
and an exit (`TestingDirAuthVoteGuard/Exit *`), and the voting intervals are a few seconds, so a
consensus exists ~10-20 s after start. The relays live at the method's address and the addresses
after it (a cloud host answers for its whole prefix), ORPort = the method's port, DirPort = +1.

Transports: `none`: the client bootstraps from the authorities and builds circuits through the
relays (what the TSPU blocks by relay address, docs/tspu-behaviour.md §5); `obfs4`: the client
uses only an obfs4 bridge (obfs4proxy on both sides) at the address after the relays, on the
method's port; its `cert=` comes from the bridge's own `pt_state/obfs4_bridgeline.txt`. The
client is ready at "Bootstrapped 100%"; its SOCKS5 port is on the subscriber's loopback.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tspulab.methods.base import Access, Method
from tspulab.methods.options import TorOptions
from tspulab.methods.process import MethodError, Node, wait_listening, wait_log

AUTHORITIES = 3
OBFS4PROXY = "/usr/bin/obfs4proxy"

# chutney's torrc_templates/common.i and authority.i ("rapid bootstrap" settings).
COMMON = """TestingTorNetwork 1
AssumeReachable 1
PathsNeededToBuildCircuits 0.25
TestingDirAuthVoteExit *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
RunAsDaemon 0
ShutdownWaitLength 0
SafeLogging 0
ProtocolWarnings 1
Log notice stdout
"""
AUTHORITY = """AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
TestingV3AuthInitialVotingInterval 5
V3AuthVotingInterval 10
TestingV3AuthInitialVoteDelay 2
V3AuthVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthDistDelay 2
"""
EXIT = """ExitRelay 1
ExitPolicyRejectPrivate 0
ExitPolicyRejectLocalInterfaces 0
ExitPolicy accept *:*
ServerDNSDetectHijacking 0
ServerDNSAllowBrokenConfig 1
"""


@dataclass(frozen=True)
class Relay:
    nick: str
    address: str
    orport: int
    dirport: int
    datadir: Path
    authority: bool


class Tor(Method):
    kind = "tor"
    tool = "tor"

    @property
    def options(self) -> TorOptions:
        assert isinstance(self.ctx.options, TorOptions)
        return self.ctx.options

    def addresses(self) -> list[str]:
        """The relays' addresses, then the bridge's (obfs4): the method's address onwards."""
        first = ipaddress.ip_address(self.ctx.server_address)
        extra = 1 if self.options.transport == "obfs4" else 0
        return [str(first + i) for i in range(self.options.relays + extra)]

    def _prepare(self) -> None:
        ctx, d = self.ctx, self.directory
        for tool in ("tor", "tor-gencert"):
            if shutil.which(tool) is None:
                raise MethodError(f"{tool} is not installed (Debian package tor)")
        addresses = self.addresses()
        self.relays = [
            Relay(
                nick=f"r{i}{ctx.tag(4)}",
                address=addresses[i],
                orport=ctx.port,
                dirport=ctx.port + 1,
                datadir=d / f"relay{i}",
                authority=i < AUTHORITIES,
            )
            for i in range(self.options.relays)
        ]
        dir_lines = [self._authority_keys(r) for r in self.relays if r.authority]
        self.dir_authorities = "\n".join(dir_lines) + "\n"
        for r in self.relays:
            torrc = (
                COMMON
                + self.dir_authorities
                + f"Nickname {r.nick}\nDataDirectory {r.datadir}\nAddress {r.address}\n"
                f"ORPort {r.address}:{r.orport}\nDirPort {r.address}:{r.dirport}\n"
                f"OutboundBindAddress {r.address}\nSocksPort 0\nContactInfo tspulab@test.test\n"
                + (AUTHORITY if r.authority else "")
                + EXIT
            )
            (d / f"{r.nick}.torrc").write_text(torrc)
        if self.options.transport == "obfs4":
            self._prepare_bridge(addresses[-1])
        (d / "client.torrc.head").write_text(
            COMMON + self.dir_authorities + f"SocksPort 127.0.0.1:{ctx.local_port}\nClientOnly 1\n"
        )

    def _authority_keys(self, r: Relay) -> str:
        """Make an authority's v3 keys and relay identity; return its DirAuthority line."""
        keys = r.datadir / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        r.datadir.chmod(0o700)
        gencert = subprocess.run(
            [
                "tor-gencert", "--create-identity-key", "--passphrase-fd", "0", "-m", "12",
                "-a", f"{r.address}:{r.dirport}",
                "-i", str(keys / "authority_identity_key"),
                "-s", str(keys / "authority_signing_key"),
                "-c", str(keys / "authority_certificate"),
            ],
            input="\n", capture_output=True, text=True,
        )  # fmt: skip
        if gencert.returncode != 0:
            raise MethodError(f"tor-gencert failed for {r.nick}: {gencert.stderr.strip()}")
        cert = (keys / "authority_certificate").read_text()
        v3 = re.search(r"^fingerprint ([0-9A-F]{40})", cert, re.M)
        fingerprint = self._fingerprint(r.datadir)
        if v3 is None:
            raise MethodError(f"no fingerprint in {keys / 'authority_certificate'}")
        return (
            f"DirAuthority {r.nick} orport={r.orport} no-v2 v3ident={v3.group(1)} "
            f"{r.address}:{r.dirport} {fingerprint}"
        )

    @staticmethod
    def _fingerprint(datadir: Path) -> str:
        """The relay identity fingerprint (tor makes the key in `datadir` if it has none)."""
        done = subprocess.run(
            [
                "tor", "--quiet", "--ignore-missing-torrc", "-f", "/dev/null",
                "--list-fingerprint", "--orport", "1",
                "--dirserver", "x 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff",
                "--datadirectory", str(datadir),
            ],
            capture_output=True, text=True,
        )  # fmt: skip
        path = datadir / "fingerprint"
        if done.returncode != 0 or not path.exists():
            raise MethodError(f"tor --list-fingerprint failed in {datadir}: {done.stderr.strip()}")
        return path.read_text().split()[1]

    def _prepare_bridge(self, address: str) -> None:
        ctx, d = self.ctx, self.directory
        if not Path(OBFS4PROXY).exists():
            raise MethodError(f"{OBFS4PROXY} is missing (Debian package obfs4proxy)")
        self.bridge = Relay(f"b{ctx.tag(4)}", address, ctx.port + 2, 0, d / "bridge", False)
        self.bridge.datadir.mkdir(mode=0o700, exist_ok=True)
        self.bridge_fingerprint = self._fingerprint(self.bridge.datadir)
        (d / "bridge.torrc").write_text(
            COMMON
            + self.dir_authorities
            + f"Nickname {self.bridge.nick}\nDataDirectory {self.bridge.datadir}\n"
            f"Address {address}\nORPort {address}:{self.bridge.orport}\n"
            f"OutboundBindAddress {address}\nSocksPort 0\nBridgeRelay 1\n"
            "PublishServerDescriptor 0\nExitPolicy reject *:*\nExtORPort auto\n"
            f"ServerTransportPlugin obfs4 exec {OBFS4PROXY}\n"
            f"ServerTransportListenAddr obfs4 {address}:{ctx.port}\n"
        )

    def start_server(self, node: Node) -> None:
        self.prepare()
        started = [
            (
                r,
                self.processes.start(
                    node, ["tor", "-f", str(self.directory / f"{r.nick}.torrc")], r.nick
                ),
            )
            for r in self.relays
        ]
        for r, s in started:
            wait_listening(node, r.orport, tool=f"tor relay {r.nick}", started=s, address=r.address)
        if self.options.transport == "obfs4":
            b = self.bridge
            s = self.processes.start(
                node, ["tor", "-f", str(self.directory / "bridge.torrc")], b.nick
            )
            wait_listening(
                node, self.ctx.port, tool="tor bridge (obfs4proxy)", started=s, address=b.address,
                timeout_s=30,
            )  # fmt: skip
            line = b.datadir / "pt_state" / "obfs4_bridgeline.txt"
            cert = re.search(r"cert=(\S+)", line.read_text()) if line.exists() else None
            if cert is None:
                raise MethodError(f"obfs4proxy wrote no cert= line in {line}")
            self.bridge_line = (
                f"Bridge obfs4 {b.address}:{self.ctx.port} {self.bridge_fingerprint} "
                f"cert={cert.group(1)} iat-mode=0"
            )
        # The authorities must have voted a consensus before a client can bootstrap.
        first = started[0]
        wait_log(
            first[1],
            r"Consensus computed|Published .*consensus",
            tool="tor authority",
            timeout_s=60,
        )

    def start_client(self, node: Node) -> Access:
        self.prepare()
        d = self.directory
        # Each subscriber host's client has a data directory of its own.
        datadir = d / f"client-{node.name}"
        datadir.mkdir(exist_ok=True, mode=0o700)
        torrc = (d / "client.torrc.head").read_text() + f"DataDirectory {datadir}\n"
        if self.options.transport == "obfs4":
            torrc += (
                f"UseBridges 1\n{self.bridge_line}\nClientTransportPlugin obfs4 exec {OBFS4PROXY}\n"
            )
        conf = d / f"client-{node.name}.torrc"
        conf.write_text(torrc)
        started = self.processes.start(node, ["tor", "-f", str(conf)], "tor-client")
        wait_log(started, r"Bootstrapped 100%", tool="tor client", timeout_s=120)
        wait_listening(
            node, self.ctx.local_port, tool="tor client", started=started, address="127.0.0.1"
        )
        return Access(socks5=f"127.0.0.1:{self.ctx.local_port}")
