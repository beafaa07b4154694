"""One ISP's own older filter as a pure box: its switch's rules and its answers, per event.

The filter is a switch of its own on the ISP's path (topologies/multi_isp.py puts it upstream of
the TSPU by default, in the ISP's core: tspu-behaviour.md §1, "ISP blocking devices were at hops
5-8", the TSPU within the first 5), driven by the same os-ken app as the TSPUs (`tspu.py`) but
with its own policy (`tspulab.dpi.oldfilter`), its own list and its own events. Like `TspuBox`,
`OldFilterBox.handle(now, event)` returns os-ken messages with no datapath and sends nothing.

Its switch uses the tables of the TSPU pipeline (`controllers/pipeline.py`), with other rules:

- `registry`: nothing but the miss (the filter acts on names; the TSPU has the addresses);
- `judged`: flows the filter is done with, both directions forwarded (or dropped, inline);
- `inspect`: from the subscriber port, TCP to an HTTP port or 443 and UDP to 53 climb to the
  controller; everything else, and every packet from upstream, goes on at switch speed;
- `forward`: the bump in the wire.

A TCP flow climbs for its SYN, the handshake's ACK and its first payload segment; then the box
installs its judged rules and the flow never climbs again. DNS queries climb one by one (each is
its own flow: resolvers pick a new source port per query). Every decision to act is logged as an
`old-filter-verdict` event naming the box and the ISP, so the report can say which box stopped
which probe.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tspulab.controllers import craft, inject, ofmsgs
from tspulab.controllers.config import OldFilterConfig, read_registry
from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    DirectionTreatment,
    FlowEndpoints,
    FlowRule,
    Output,
    base_rules,
    judged_rules,
)
from tspulab.controllers.switch_events import (
    BarrierReply,
    Event,
    FlowRemoved,
    PacketIn,
    ProfileChange,
    RegistryChange,
    SwitchDown,
    SwitchError,
    SwitchUp,
)
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.oldfilter import (
    DNS_PORT,
    TLS_PORT,
    Action,
    DnsTamper,
    HttpBlock,
    OldFilterPolicy,
    Pass,
    TlsReset,
)
from tspulab.dpi.packet import Packet, decode
from tspulab.dpi.registry import Registry

BOX = "old-filter"
"""How events and reports name this kind of box (the TSPU's is "tspu")."""
COOKIE_OLD_FILTER = 0x7370_0010
#: a judged flow the switch has not seen for this long is forgotten (then it climbs again)
IDLE_TIMEOUT_S = 60
#: TCP packets of one flow the filter reads before it gives up on seeing a request
MAX_PACKETS = 6
#: undecided TCP flows it keeps (SYNs that never send a request); past it the oldest is forgotten
MAX_UNDECIDED = 10_000

EventSink = Callable[..., None]


@dataclass
class _Flow:
    packets: int = 0


def inspect_rules(config: OldFilterConfig) -> list[FlowRule]:
    """What climbs to the controller: client→server TCP to HTTP ports and 443, UDP to 53."""
    ports = sorted({*config.settings.http_ports, TLS_PORT})
    wanted: list[tuple[int, str, int]] = [(IP_PROTO_TCP, "tcp_dst", p) for p in ports]
    wanted.append((IP_PROTO_UDP, "udp_dst", DNS_PORT))
    rules = []
    for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        for proto, field, port in wanted:
            rules.append(
                FlowRule(
                    table="inspect",
                    priority=10,
                    match=(
                        ("in_port", config.ports.subscriber),
                        ("eth_type", eth),
                        ("ip_proto", proto),
                        (field, port),
                    ),
                    actions=(Output(CONTROLLER_PORT),),
                    cookie=COOKIE_OLD_FILTER,
                    kind="inspect",
                )
            )
    return rules


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _endpoints(pkt: Packet) -> FlowEndpoints:
    return FlowEndpoints(pkt.proto, _addr(pkt.src), pkt.sport, _addr(pkt.dst), pkt.dport)


class OldFilterBox:
    """Everything the controller knows and decides for one ISP's old filter switch."""

    kind = BOX

    def __init__(self, config: OldFilterConfig, log: EventSink | None = None) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.log: EventSink = log or (lambda event, **fields: None)
        registry = read_registry(config.registry_file) if config.registry_file else Registry()
        self.policy = OldFilterPolicy(config.settings, registry)
        self.flows: dict[FlowEndpoints, _Flow] = {}
        self.done: set[FlowEndpoints] = set()
        self.connected = False
        self.counters: Counter[str] = Counter()
        self._install_started: float | None = None
        #: (domain rules added, removed) by the last registry change, for the control channel
        self.last_registry_change = (0, 0)

    def handle(self, now: float, event: Event) -> list[Any]:
        if isinstance(event, PacketIn):
            return self._packet_in(event)
        if isinstance(event, SwitchUp):
            return self._switch_up(now)
        if isinstance(event, SwitchDown):
            self.connected = False
            return []
        if isinstance(event, BarrierReply):
            if self._install_started is not None:
                seconds = round(now - self._install_started, 4)
                self.log("old-filter-rules-installed", dpid=self.config.dpid,
                         isp=self.config.name, seconds=seconds)  # fmt: skip
                self._install_started = None
            return []
        if isinstance(event, FlowRemoved):
            return self._flow_removed(event)
        if isinstance(event, RegistryChange):
            return self._registry_change(event.registry)
        if isinstance(event, SwitchError):
            self.counters["switch_errors"] += 1
            self.log("switch-error", box=BOX, isp=self.config.name, dpid=self.config.dpid,
                     type=event.type, code=event.code)  # fmt: skip
            return []
        if isinstance(event, ProfileChange):
            return []  # profiles are the TSPU's; the filter has its own settings
        raise TypeError(f"not a box event: {event!r}")

    def stats(self) -> dict[str, int]:
        return {f"old_filter_{k}": v for k, v in self.counters.items()}

    def initial_rules(self) -> list[FlowRule]:
        return [*base_rules(self.config.ports, inspect=False), *inspect_rules(self.config)]

    def _switch_up(self, now: float) -> list[Any]:
        """Wipe and rebuild: pipeline and inspection; judged flows climb again and are re-read
        (a filter that restarted forgets its flows, as a real one would)."""
        self.connected = True
        self.flows.clear()
        self.done.clear()
        rules = self.initial_rules()
        out: list[Any] = [ofmsgs.delete_all_flows()]
        out += [ofmsgs.flow_mod(r) for r in rules]
        out.append(ofmsgs.barrier())
        self._install_started = now
        self.log("old-filter-rules-sent", dpid=self.config.dpid, isp=self.config.name,
                 rules=len(rules), domains=self.policy.registry.domain_count())  # fmt: skip
        return out

    def _packet_in(self, ev: PacketIn) -> list[Any]:
        self.counters["packet_ins"] += 1
        ports = self.config.ports
        if ev.in_port not in (ports.subscriber, ports.upstream):
            self.counters["unknown_port"] += 1
            return []
        from_sub = ev.in_port == ports.subscriber
        out_port = ports.upstream if from_sub else ports.subscriber
        forward = [ofmsgs.packet_out(ev.data, ev.in_port, out_port)]
        try:
            pkt = decode(ev.data)
        except DecodeError:
            return forward  # not IP: the filter has nothing to say about it
        ep = _endpoints(pkt)
        action = self.policy.judge(pkt, from_sub)
        if isinstance(action, Pass):
            return self._passed(ep, action, pkt) + forward
        return self._act(ep, action, ev, forward)

    def _passed(self, ep: FlowEndpoints, action: Pass, pkt: Packet) -> list[Any]:
        if ep.proto != IP_PROTO_TCP:
            return []
        flow = self.flows.get(ep)
        if flow is None:
            if len(self.flows) >= MAX_UNDECIDED:  # a SYN flood must not grow the box's memory
                del self.flows[next(iter(self.flows))]
                self.counters["undecided_evicted"] += 1
            flow = self.flows[ep] = _Flow()
        flow.packets += 1
        if action.done or flow.packets >= MAX_PACKETS:
            return self._finish(ep, drop=False)
        return []

    def _finish(self, ep: FlowEndpoints, *, drop: bool) -> list[Any]:
        """The flow leaves the controller: judged rules for both directions."""
        self.flows.pop(ep, None)
        if ep.proto != IP_PROTO_TCP or ep in self.done:
            return []
        self.done.add(ep)
        treat = DirectionTreatment("drop" if drop else "forward")
        rules = judged_rules(ep, treat, treat, idle_timeout=IDLE_TIMEOUT_S)
        return [ofmsgs.flow_mod(_tagged(r)) for r in rules]

    def _act(
        self, ep: FlowEndpoints, action: Action, ev: PacketIn, forward: list[Any]
    ) -> list[Any]:
        """Inject the answer toward the client first (it must win the race with the server's),
        then, passive, let the client's packet go on; inline, drop it and the flow."""
        s = self.config.settings
        answer: bytes | None
        detail: dict[str, Any]
        if isinstance(action, HttpBlock):
            answer = inject.tcp_answer(ev.data, action.response)
            detail = {"action": action.kind, "host": action.host}
        elif isinstance(action, TlsReset):
            answer = craft.rst_to_sender(ev.data)
            detail = {"action": "tls-reset", "sni": action.sni}
        elif isinstance(action, DnsTamper):
            answer = inject.udp_answer(ev.data, action.response)
            detail = {"action": "dns-" + s.dns, "qname": action.qname, "answer": action.answer}
        else:  # Pass is handled by the caller
            raise TypeError(f"not an action: {action!r}")
        self.counters[str(detail["action"])] += 1
        self.log(
            "old-filter-verdict", box=BOX, isp=self.config.name, flow=ep.__dict__,
            mode=s.mode, **detail,
        )  # fmt: skip
        out: list[Any] = []
        if answer is not None:
            out.append(ofmsgs.packet_out(answer, ev.in_port, ev.in_port))
        inline = s.mode == "inline"
        out += self._finish(ep, drop=inline)
        if not inline:
            out += forward
        return out

    def _flow_removed(self, ev: FlowRemoved) -> list[Any]:
        get = ev.match.get
        proto = get("ip_proto")
        if proto != IP_PROTO_TCP:
            return []
        src, dst = get("ipv4_src") or get("ipv6_src"), get("ipv4_dst") or get("ipv6_dst")
        sport, dport = get("tcp_src"), get("tcp_dst")
        if None in (src, dst, sport, dport):
            return []
        self.done.discard(FlowEndpoints(proto, str(src), int(sport), str(dst), int(dport)))
        return []

    def _registry_change(self, registry: Registry) -> list[Any]:
        before = {r.key for r in self.policy.registry.domain_rules()}
        after = {r.key for r in registry.domain_rules()}
        self.last_registry_change = (len(after - before), len(before - after))
        self.policy.registry = registry
        self.counters["registry_updates"] += 1
        return []


def _tagged(rule: FlowRule) -> FlowRule:
    """A judged rule with the filter's cookie (its FlowRemoved tells the box, not a TSPU)."""
    return replace(rule, cookie=COOKIE_OLD_FILTER)
