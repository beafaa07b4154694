"""MTProto proxy: what most Telegram users ran in April 2018, on the project's own pieces.

The server side is two processes of `tspulab.methods.mtproto_dc` in the method's host: the
proxy on the method's address and port, with a 16-byte secret made for the run, and the lab's
data centre on that host's loopback (the proxy's leg to the data centre runs abroad, between
two foreign hosts, where no TSPU sits). The client is the project's own
(`tspulab.methods.mtproto_client`): the probe hands it a tg://proxy link, as users shared them.
No registry packages an MTProto data centre, and the PyPI proxy `mtprotoproxy` relays only to
Telegram's real data-centre addresses: docs/methods.md says why the project runs its own.
"""

from __future__ import annotations

import secrets
import sys

from tspulab.methods.base import Access, Method
from tspulab.methods.mtproto_client import proxy_link
from tspulab.methods.options import MtprotoOptions
from tspulab.methods.process import Node, wait_log

_MODULE = "tspulab.methods.mtproto_dc"


class Mtproto(Method):
    kind = "mtproto"
    tool = "tspulab mtproto_dc (proxy and lab data centre)"
    parallel_clients = True  # no client process: each probe runs the client once

    @property
    def options(self) -> MtprotoOptions:
        assert isinstance(self.ctx.options, MtprotoOptions)
        return self.ctx.options

    @property
    def dc_port(self) -> int:
        """The data centre's port on the proxy host's loopback (derived from the method's name,
        so two MTProto methods in one host do not clash)."""
        return self.ctx.local_port

    def _prepare(self) -> None:
        path = self.directory / "secret"
        path.write_text(secrets.token_hex(16) + "\n")
        path.chmod(0o600)

    @property
    def secret(self) -> str:
        return (self.directory / "secret").read_text().strip()

    def start_server(self, node: Node) -> None:
        self.prepare()
        dc = self.processes.start(
            node,
            [sys.executable, "-m", _MODULE, "dc", "--listen", f"127.0.0.1:{self.dc_port}"],
            "mtproto-dc",
        )
        wait_log(dc, r"listening on", tool="mtproto-dc")
        listen = f"{self.ctx.server_address}:{self.ctx.port}"
        argv = [sys.executable, "-m", _MODULE, "proxy", "--listen", listen]
        argv += ["--secret", self.secret, "--dc", f"127.0.0.1:{self.dc_port}"]
        proxy = self.processes.start(node, argv, "mtproto-proxy")
        wait_log(proxy, r"listening on", tool="mtproto-proxy")

    def start_client(self, node: Node) -> Access:
        self.prepare()
        link = proxy_link(
            self.ctx.server_address,
            self.ctx.port,
            self.secret,
            transport=self.options.transport,
            dc=self.options.dc,
            domains=tuple(self.options.telegram_domains),
        )
        return Access(mtproto=link)

    def health(self, node: Node) -> str | None:
        for started in self.processes.started:
            if started.proc.poll() is not None:
                return f"{started.name} exited (status {started.proc.returncode}): {started.log}"
        return None
