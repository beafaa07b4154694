"""Count the processes a piece of work starts (all its descendants), from the kernel's own events.

    with SpawnCounter() as spawned:
        bring_the_lab_up()
    print(spawned.processes, spawned.execs)
    print(spawned.between(t0, t1))   # the part between two time.monotonic() readings

The kernel's process connector (netlink, `CONFIG_PROC_EVENTS`, root) reports every fork and exec
on the machine; the counter keeps the tree that starts at this process, so other engineers' work on
a shared machine is not counted, daemons that detach are (their fork is seen before they leave
the tree), and threads are not (a thread shares its parent's tgid). Works the same on the host
and in the test VM, where a process costs 40-55x more (docs/vm.md).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from types import TracebackType

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
NLMSG_DONE = 3
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=II")  # pid, tgid
SO_RCVBUFFORCE = 33


class SpawnCounter:
    """Processes (forks that are not threads) and execs under this process while in the block."""

    def __init__(self) -> None:
        self.processes = 0
        self.execs = 0
        #: CLOCK_MONOTONIC (ns) of each process start and each exec, for `between`.
        self.fork_ns: list[int] = []
        self.exec_ns: list[int] = []
        self.lost = False
        self._tree = {os.getpid()}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:  # a busy machine makes many events; lost ones would undercount
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 * 2**20)
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 2**20)
        self._sock.bind((0, CN_IDX_PROC))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _control(self, op: int) -> None:
        payload = struct.pack("=I", op)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        self._sock.send(_NLMSG.pack(_NLMSG.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn)

    def __enter__(self) -> SpawnCounter:
        self._control(PROC_CN_MCAST_LISTEN)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._control(PROC_CN_MCAST_IGNORE)
        finally:
            self._sock.close()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: events were dropped
                self.lost = True
                continue
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length = _NLMSG.unpack_from(data, offset)[0]
                if length < _NLMSG.size:
                    break
                self._event(data, offset + _NLMSG.size + _CN_MSG.size)
                offset += (length + 3) & ~3

    def _event(self, data: bytes, at: int) -> None:
        if at + _EVENT.size > len(data):
            return
        what, _, stamp = _EVENT.unpack_from(data, at)
        body = at + _EVENT.size
        if what == PROC_EVENT_FORK:
            _, parent_tgid, child_pid, child_tgid = _FORK.unpack_from(data, body)
            if parent_tgid in self._tree and child_pid == child_tgid:
                self._tree.add(child_tgid)
                self.processes += 1
                self.fork_ns.append(stamp)
        elif what == PROC_EVENT_EXEC and _EXEC.unpack_from(data, body)[1] in self._tree:
            self.execs += 1
            self.exec_ns.append(stamp)

    def between(self, t0_s: float, t1_s: float) -> tuple[int, int]:
        """(processes, execs) started between two `time.monotonic()` readings, taken in any
        process of the machine (a run sandbox's too: the clock is not namespaced)."""
        lo, hi = t0_s * 1e9, t1_s * 1e9
        return (sum(lo <= t <= hi for t in self.fork_ns), sum(lo <= t <= hi for t in self.exec_ns))


if __name__ == "__main__":  # a self-check: ten `true`s are ten processes and ten execs
    import subprocess
    import time

    with SpawnCounter() as counted:
        for _ in range(10):
            subprocess.run(["true"], check=True)
        threading.Thread(target=time.sleep, args=(0.1,)).start()
        time.sleep(0.5)
    print(f"processes {counted.processes}, execs {counted.execs}, lost events: {counted.lost}")
