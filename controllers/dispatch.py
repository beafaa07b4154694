"""Handle the hot OpenFlow events in the thread that read them, not through os-ken's app queue.

os-ken hands every event to each app through a queue and a thread of the app's own
(`OSKenApp._event_loop`): a packet-in crosses three threads (the datapath's reader, the app's
event loop, the datapath's writer), with the GIL handed over at each step, and with the TSPU and
the learning-switch apps in one process every packet-in wakes both apps' threads. For the events
listed here the handlers run directly in the datapath's reader thread, which also keeps them in
the order the switch sent them. The switch's features and os-ken's own state changes (switch up
and down) still go through the queue.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from os_ken.controller import ofp_event

# Not the switch's features: os-ken's own handler (which sets `datapath.id`) runs after the
# observers in the reader thread, so a synchronous features handler would see no dpid yet.
SYNCHRONOUS = (
    ofp_event.EventOFPPacketIn,
    ofp_event.EventOFPFlowRemoved,
    ofp_event.EventOFPErrorMsg,
    ofp_event.EventOFPBarrierReply,
)


class SynchronousDispatch:
    """Mix into an `OSKenApp` (before it) whose handlers for `SYNCHRONOUS` events are
    thread-safe and never block."""

    def _send_event(self, ev: Any, state: Any) -> None:
        if isinstance(ev, SYNCHRONOUS):
            for handler in self.get_handlers(ev, state):  # type: ignore[attr-defined]
                handler(ev)
            return
        super()._send_event(ev, state)  # type: ignore[misc]


class LockedSocket:
    """A datapath's socket whose `sendall` is serialised by a lock, so that the app can write to
    the switch directly from the thread that decided (no hand-off to os-ken's writer thread: a
    queue put, a condition notify and a GIL hand-over per answer, ~35 % of the controller's CPU
    measured with bench/controller_cpu.py) while os-ken's writer thread still sends its own
    messages (echo replies, port-desc requests) without interleaving bytes with ours."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()

    def sendall(self, data: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def write_directly(datapath: Any) -> None:
    """Let the app write to `datapath` from its own thread (idempotent)."""
    if not isinstance(datapath.socket, LockedSocket):
        datapath.socket = LockedSocket(datapath.socket)


def send_now(datapath: Any, data: bytes) -> None:
    """Write `data` to the switch from this thread; if the socket refuses (closing, timed out),
    leave it to os-ken's queue, which knows how to close a dead connection."""
    sock = datapath.socket
    if isinstance(sock, LockedSocket):
        try:
            sock.sendall(data)
            return
        except OSError:
            pass
    datapath.send(data)
