"""What a TSPU profile would have done to the connections of a bench capture.

The capture (bench.py) holds what the box saw; it is replayed through ``TspuEngine`` — the engine
the live controller and ``tspulab replay --profile`` run — with the bench's target name in the
block registry and the bench's subscriber network. A connection *gets through* when its flow's
verdict lets it be: allow (or detect, which only logs), and no packet of it was dropped or reset.
A police, random-loss or freeze verdict counts as not getting through even when the small test
page came in under the bucket: the censor acted on the flow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.engine_replay import FlowVerdict, replay_with_profile
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.profile import Profile, load_profile
from tspulab.dpi.registry import load_inline
from tspulab.dpi.verdict import Action

PASSING = (Action.ALLOW, Action.DETECT)


@dataclass(frozen=True, slots=True)
class Judgement:
    """One connection under one profile."""

    passed: bool
    action: str
    rule: str | None
    reason: str
    fates: dict[str, int]

    @classmethod
    def of(cls, fv: FlowVerdict) -> Judgement:
        v = fv.verdict
        acted = any(k != "forward" for k in fv.fates)
        passed = v.action in PASSING and not acted
        return cls(passed, str(v.action.value), v.rule, v.reason, dict(fv.fates))


def engine(profile: str | Profile, target: str, subscriber_net: str) -> TspuEngine:
    loaded = load_profile(profile) if isinstance(profile, str) else profile
    registry = load_inline([target], "bench target")
    return TspuEngine(loaded, registry, [ipaddress.ip_network(subscriber_net)])


def judge_capture(
    capture: Path,
    profile: str | Profile,
    *,
    target: str,
    server: str,
    subscriber_net: str,
    port: int = 443,
) -> list[Judgement]:
    """One judgement per client connection to ``server``:``port``, in order of first packet."""
    result = replay_with_profile(read_capture(capture), engine(profile, target, subscriber_net))
    server_addr = ipaddress.ip_address(server).packed
    return [
        Judgement.of(fv)
        for fv in result.flows
        if fv.flow.server_addr == server_addr and fv.flow.server_port == port
    ]


def judge_many(
    capture: Path,
    profiles: Sequence[str],
    *,
    target: str,
    server: str,
    subscriber_net: str,
    port: int = 443,
) -> dict[str, list[Judgement]]:
    return {
        p: judge_capture(
            capture, p, target=target, server=server, subscriber_net=subscriber_net, port=port
        )
        for p in profiles
    }
