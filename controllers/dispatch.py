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
