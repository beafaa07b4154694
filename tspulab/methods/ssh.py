"""An SSH tunnel: OpenSSH's sshd in the cloud, `ssh -N -D` (a local SOCKS5 proxy) in the subscriber.

The server's host key and the client's key are Ed25519 keys made for the run; the client knows
only that host key (StrictHostKeyChecking yes) and logs in with its key only (BatchMode). sshd
runs in the foreground with a configuration of its own (no PAM, no password logins, only this
key), so no system file is read or changed. The client is ready when it has authenticated and
its SOCKS port listens. On the wire the first bytes are the `SSH-2.0-` banner (§5 fingerprints).
"""

from __future__ import annotations

from pathlib import Path

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import write_ssh_keypair
from tspulab.methods.options import SshOptions
from tspulab.methods.process import MethodError, Node, wait_listening, wait_log

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
"""sshd refuses to start without its privilege separation directory (Debian's unit makes it)."""


class SshTunnel(Method):
    kind = "ssh"
    tool = "openssh"

    @property
    def options(self) -> SshOptions:
        assert isinstance(self.ctx.options, SshOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, d = self.ctx, self.directory
        host_pub = write_ssh_keypair(d / "host_key")
        client_pub = write_ssh_keypair(d / "client_key")
        (d / "authorized_keys").write_text(client_pub + "\n")
        where = ctx.server_address if ctx.port == 22 else f"[{ctx.server_address}]:{ctx.port}"
        (d / "known_hosts").write_text(f"{where} {host_pub}\n")
        (d / "sshd_config").write_text(
            f"Port {ctx.port}\nListenAddress {ctx.server_address}\n"
            f"HostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "AllowTcpForwarding yes\nPermitTunnel no\nX11Forwarding no\n"
            f"Ciphers {self.options.cipher}\nLogLevel VERBOSE\n"
        )

    def start_server(self, node: Node) -> None:
        self.prepare()
        if not SSHD.exists():
            raise MethodError(f"{SSHD} is missing (Debian package openssh-server)")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        started = self.processes.start(
            node, [str(SSHD), "-D", "-e", "-f", str(self.directory / "sshd_config")], "sshd"
        )
        wait_listening(
            node, self.ctx.port, tool="sshd", started=started, address=self.ctx.server_address
        )

    def start_client(self, node: Node) -> Access:
        self.prepare()
        ctx, d = self.ctx, self.directory
        argv = [
            "ssh", "-N", "-F", "/dev/null",
            "-D", f"127.0.0.1:{ctx.local_port}",
            "-i", str(d / "client_key"),
            "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=VERBOSE",
            "-o", f"Ciphers={self.options.cipher}",
            "-o", "ServerAliveInterval=15",
            "-p", str(ctx.port), f"root@{ctx.server_address}",
        ]  # fmt: skip
        started = self.processes.start(node, argv, "ssh-client")
        wait_log(started, r"Authenticated to ", tool="ssh client", timeout_s=20)
        wait_listening(
            node, ctx.local_port, tool="ssh client", started=started, address="127.0.0.1"
        )
        return Access(socks5=f"127.0.0.1:{ctx.local_port}")
