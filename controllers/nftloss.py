"""Random per-packet loss on the TSPU switch's ports, with nftables, on a worker thread.

OpenFlow 1.3 cannot drop a random fraction of one flow's packets: a select group picks its bucket
by a hash of the flow, so every packet of a flow lands in the same bucket. This kernel has no
netem and no tc `gact` either, but it has nftables' netdev *egress* hook and `numgen random`.
Open vSwitch's userspace datapath sends through AF_PACKET, and such frames do pass the egress hook
(measured: 567 of 2,000 frames dropped at p = 0.3, the sender seeing ENOBUFS), so a rule on the
TSPU switch's egress port drops the chosen fraction of one direction of one flow, in the kernel,
after the switch forwarded it: the TSPU box dropping on its way out.

Commands go through libnftables in this process (Debian's python3-nftables binding, ~0.5 ms a
rule here) rather than an `nft` process each (~5-10 ms here, and 40-55x that in an emulated VM
guest, where the first YouTube transfer of a run finished before its loss rule was in). Still,
the box only returns `LossAdd` / `LossRemove` work and `submit` queues it for one worker thread,
so no packet-in waits for nftables. The worker makes the table and chains as it starts, so the
first flow's rule is one command. One table per run (`netdev <name>`, recorded by the lab for
cleanup), one egress chain per port.
"""

from __future__ import annotations

import ipaddress
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tspulab.contracts import EventKind
from tspulab.controllers.enforcement import LossAdd, LossRemove, LossRule
from tspulab.controllers.pipeline import FlowEndpoints

SCALE = 1_000_000

Runner = Callable[[Sequence[str]], str]
"""Runs an nft command given as `nft`'s arguments and returns its output; raises NftError."""

#: `nft` options the runner turns into libnftables output flags.
ECHO, HANDLE = "--echo", "--handle"


class NftError(RuntimeError):
    """nftables refused a command (its message says why)."""


class LibNftables:
    """A Runner over libnftables in this process and network namespace. Made on the worker
    thread (a libnftables context is not shared between threads)."""

    def __init__(self) -> None:
        try:
            from nftables import Nftables  # Debian's python3-nftables (scripts/setup.sh)
        except ImportError as err:
            raise NftError(
                "python3-nftables is not installed (scripts/setup.sh installs it)"
            ) from err
        self._nft: Any = Nftables()

    def __call__(self, args: Sequence[str]) -> str:
        self._nft.set_echo_output(ECHO in args)
        self._nft.set_handle_output(HANDLE in args)
        # nft itself joins its arguments with spaces into one command
        command = " ".join(a for a in args if a not in (ECHO, HANDLE))
        rc, out, err = self._nft.cmd(command)
        if rc != 0:
            raise NftError(f"nft {command}: {err.strip()}")
        return str(out)


def rule_text(loss: LossRule) -> str:
    """The nft rule expression dropping `loss.probability` of one direction of one flow."""
    ep = loss.ep
    if loss.direction == "up":
        src, sport, dst, dport = ep.client, ep.client_port, ep.server, ep.server_port
    else:
        src, sport, dst, dport = ep.server, ep.server_port, ep.client, ep.client_port
    fam = "ip" if ipaddress.ip_address(src).version == 4 else "ip6"
    l4 = "tcp" if ep.proto == 6 else "udp"
    threshold = round(loss.probability * SCALE)
    return (
        f"{fam} saddr {src} {fam} daddr {dst} {l4} sport {sport} {l4} dport {dport} "
        f"numgen random mod {SCALE} < {threshold} counter drop"
    )


class Prepare:
    """Work for the worker: make the table and chains (the TSPU switch has come up)."""


class NftLoss:
    def __init__(
        self,
        table: str,
        subscriber_if: str,
        upstream_if: str,
        *,
        runner: Runner | None = None,
        log: Callable[..., None] | None = None,
    ) -> None:
        self.table = table
        self.interfaces = {"down": subscriber_if, "up": upstream_if}
        self._runner = runner
        self._run: Runner = self._not_started
        self._log = log or (lambda event, **fields: None)
        self._handles: dict[tuple[FlowEndpoints, str], int] = {}
        self._ready = False
        # each piece of work with when it was submitted: the log says how late a loss started
        self._queue: queue.Queue[tuple[LossAdd | LossRemove | Prepare, float] | None] = (
            queue.Queue()
        )
        self.prepare()  # first of all: the table and chains, if the ports are there already
        self._thread = threading.Thread(target=self._work, name="tspulab-nft", daemon=True)
        self._thread.start()

    # --- called from the packet path: never blocks on nft --------------------------------------

    def submit(self, work: LossAdd | LossRemove) -> None:
        self._queue.put((work, time.monotonic()))

    def prepare(self) -> None:
        """The switch is up (its ports exist): make the table and chains now, if the start could
        not, so that a flow's loss is one rule."""
        self._queue.put((Prepare(), time.monotonic()))

    def wait_idle(self) -> None:
        """Block until every submitted piece of work is done (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        """Finish the queued work, stop the worker and delete the table."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._ready:
            self._call("delete", "table", "netdev", self.table)
            self._ready = False

    # --- the worker ---------------------------------------------------------------------------

    @staticmethod
    def _not_started(args: Sequence[str]) -> str:
        raise NftError("the nftables worker has not started")

    def _work(self) -> None:
        try:
            self._run = self._runner or LibNftables()
        except NftError as exc:
            reason = str(exc)

            def refuse(args: Sequence[str]) -> str:
                raise NftError(reason)

            self._run = refuse
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                work, submitted = item
                if isinstance(work, LossAdd):
                    self._add(work.loss)
                    self._log(
                        EventKind.LOSS_ON, table=self.table, direction=work.loss.direction,
                        probability=work.loss.probability, flow=dict(work.loss.ep.__dict__),
                        delay_ms=round((time.monotonic() - submitted) * 1000, 2),
                    )  # fmt: skip
                elif isinstance(work, LossRemove):
                    self._remove(work.ep)
                else:
                    self._prepare()
            except Exception as exc:  # one failed rule must not stop the others
                self._log(EventKind.NFT_ERROR, table=self.table, work=repr(item), error=repr(exc))
            finally:
                self._queue.task_done()

    def _call(self, *args: str) -> str | None:
        try:
            return self._run(args)
        except (NftError, OSError) as exc:
            self._log(EventKind.NFT_ERROR, table=self.table, args=list(args), error=repr(exc))
            return None

    def _prepare(self) -> None:
        try:
            self._ensure()
        except (NftError, OSError) as exc:  # e.g. the ports are not up yet: retried per rule
            self._log(EventKind.NFT_DEFERRED, table=self.table, error=repr(exc))

    def _ensure(self) -> None:
        if self._ready:
            return
        self._run(("add", "table", "netdev", self.table))
        for direction, ifname in self.interfaces.items():
            self._run(
                ("add", "chain", "netdev", self.table, direction,
                 f"{{ type filter hook egress device {ifname} priority 0 ; }}")
            )  # fmt: skip
        self._ready = True

    def _add(self, loss: LossRule) -> None:
        self._ensure()
        out = self._run(
            (ECHO, HANDLE, "add", "rule", "netdev", self.table, loss.direction, rule_text(loss))
        )
        match = re.search(r"# handle (\d+)", out)
        if match:
            self._handles[(loss.ep, loss.direction)] = int(match.group(1))

    def _remove(self, ep: FlowEndpoints) -> None:
        for direction in ("up", "down"):
            handle = self._handles.pop((ep, direction), None)
            if handle is not None:
                self._call("delete", "rule", "netdev", self.table, direction, "handle", str(handle))
