"""Domain fronting through a CDN-like edge: an innocent name outside, the real one inside.

The edge is an nginx in the cloud host at the method's address: TLS with a certificate for the
innocent `front_domain`, and it forwards each request to the site its HTTP `Host` names (an
upstream resolved with the lab's resolver), as a CDN that hosts both names does. The client is
the application itself (curl): it connects to the edge, sends `front_domain` as SNI, so the TSPU
sees only the innocent name, and puts the real name in the encrypted `Host` header. Telegram used
this through Google and Amazon in 2018 (docs/tspu-behaviour.md §6, "Domain fronting / CDN").
"""

from __future__ import annotations

import re

from tspulab.methods.base import Access, Method
from tspulab.methods.options import FrontingOptions
from tspulab.methods.process import MethodError, Node, run_checked, wait_listening


class Fronting(Method):
    kind = "fronting"
    tool = "nginx"

    @property
    def options(self) -> FrontingOptions:
        assert isinstance(self.ctx.options, FrontingOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        d, o = self.directory, self.options
        self.cert = self.ctx.certs.issue_server("edge", [o.front_domain])
        (d / "tmp").mkdir(exist_ok=True)

    def _conf(self, resolver: str) -> str:
        d, ctx = self.directory, self.ctx
        temp = "".join(
            f"    {kind}_temp_path {d / 'tmp' / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            "# written by tspulab: a CDN-like edge for domain fronting\n"
            "daemon off;\nmaster_process on;\nuser root root;\nworker_processes 1;\n"
            f"pid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {d / 'access.log'};\n{temp}"
            f"    resolver {resolver} ipv6=off valid=5s;\n"
            "    server {\n"
            f"        listen {ctx.server_address}:{ctx.port} ssl;\n"
            f"        ssl_certificate {self.cert.cert};\n"
            f"        ssl_certificate_key {self.cert.key};\n"
            "        location / {\n"
            # The origin is whatever Host names: the edge does not care what the SNI said.
            "            proxy_pass https://$host$request_uri;\n"
            "            proxy_ssl_server_name on;\n"
            "            proxy_set_header Host $host;\n"
            "            proxy_buffering off;\n"
            "        }\n"
            "    }\n"
            "}\n"
        )

    def start_server(self, node: Node) -> None:
        self.prepare()
        resolvers = re.findall(r"^nameserver\s+(\S+)", node.cmd("cat /etc/resolv.conf"), re.M)
        if not resolvers:
            raise MethodError(f"fronting edge on {node.name}: no nameserver in /etc/resolv.conf")
        conf = self.directory / "nginx.conf"
        conf.write_text(self._conf(resolvers[0]))
        # Checked in the host (nginx -t binds the listen address, which only exists there).
        run_checked(node, f"nginx -t -q -c {conf}", tool="fronting edge (nginx)")
        started = self.processes.start(node, ["nginx", "-c", str(conf)], "nginx-edge")
        wait_listening(
            node, self.ctx.port, tool="fronting edge (nginx)", started=started,
            address=self.ctx.server_address,
        )  # fmt: skip

    def start_client(self, node: Node) -> Access:
        self.prepare()
        return Access(
            front=self.options.front_domain,
            front_address=f"{self.ctx.server_address}:{self.ctx.port}",
            ca=str(self.ctx.certs.ca_path),
        )
