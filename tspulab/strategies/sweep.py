"""The strategy sweep: every single strategy, then pairs, through the bench, judged per profile.

For each strategy the bench (bench.py) runs the proxy and rewriters it needs, makes ``trials``
real connections to the target while tcpdump records what the box sees, and replays that capture
through each profile's engine (verdicts.py). A trial *succeeds* under a profile when the real
server answered (the strategy did not break the connection) and the profile's verdict on that
connection lets it through. One live run serves every profile, so ``--diff P1 P2`` costs no more
than one profile.

Connections are matched to trials by time: the flows whose first packet falls between a trial's
start and the next one's belong to it; a trial passes a profile only if all of them pass. TCP
flows whose SYN is not in the run's capture are left out (``opened_ports``).

With ``live=True`` the profile's engine acts on the bench (censor.py), one run per profile, and
the live verdicts are used; each run's capture is replayed too, and ``replay_agrees`` counts
the trials where replay and live give the same pass or fail.

Pairs (like zapret's blockcheck, but against a known censor): two singles with different names,
taken from the singles that failed at least one profile, the most successful first (in diagonal
order: every pair among the best k before the (k+1)-th single joins), up to ``max_pairs``. A
pair the spec language refuses (TCP with UDP strategies) is skipped.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tspulab.dpi.engine_replay import replay_with_profile
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.packet import PROTO_TCP, TCP_ACK, TCP_SYN, decode
from tspulab.dpi.pcap import read_capture
from tspulab.strategies.bench import SERVER, SUBSCRIBER_NET, Bench, Trial
from tspulab.strategies.spec import NONE, Strategy, StrategySpecError, parse, parse_any
from tspulab.strategies.verdicts import Judgement, engine

TCP_SINGLES = (
    "split:1", "split:sni", "split:1+split:sni", "disorder:1", "disorder:sni", "oob:sni",
    "tlsrec:1", "tlsrec:sni", "prefix:ccs", "pad:1600", "sni-dot", "sni-case",
    "fake:ttl=2", "fake:ttl=2:data=random:len=120", "fake:ttl=2:data=random:len=64",
    "fake:badsum", "fake:badseq", "fake:md5", "fake:md5:data=random:len=120",
    "ipfrag:sni", "ipfrag:sni:order=reverse", "srvwin:40", "split-handshake",
)  # fmt: skip
UDP_SINGLES = (
    "udpfake", "udpfake:data=zero:len=1200", "udpfake:data=short:len=601",
    "udpfake:data=short:len=600", "fake:ttl=2:data=random:len=64", "ipfrag:at=64",
    "ipfrag:at=600",
)  # fmt: skip


@dataclass
class StrategyResult:
    strategy: str
    trials: list[Trial]
    judged: dict[str, list[Judgement | None]]
    """profile -> per trial, the first failing judgement of its flows (or a passing one);
    None when no flow of that trial was seen."""
    seconds: float
    error: str | None = None
    live_trials: dict[str, list[Trial]] = field(default_factory=dict)
    """With the censor acting live: each profile's own trials (``trials`` is then empty)."""
    replay_agrees: dict[str, int] = field(default_factory=dict)
    """Live runs: trials whose replayed verdict (pass or not) equals the live one."""

    def trials_of(self, profile: str) -> list[Trial]:
        return self.live_trials.get(profile, self.trials)

    def successes(self, profile: str) -> list[bool]:
        return [
            t.ok and j is not None and j.passed
            for t, j in zip(self.trials_of(profile), self.judged.get(profile, []), strict=False)
        ]

    def success_count(self, profile: str) -> int:
        return sum(self.successes(profile))

    def ttfb_ms(self, profile: str) -> float | None:
        times = [
            t.ttfb_s * 1000
            for t, ok in zip(self.trials_of(profile), self.successes(profile), strict=False)
            if ok and t.ttfb_s is not None
        ]
        return statistics.median(times) if times else None

    def why(self, profile: str) -> str:
        """Why trials failed: the live error or the verdict, most frequent first."""
        reasons: dict[str, int] = {}
        for t, j in zip(self.trials_of(profile), self.judged.get(profile, []), strict=False):
            if not t.ok:
                key = f"live: {t.detail[:60]}"
            elif j is None:
                key = "no flow in the capture"
            elif not j.passed:
                key = f"{j.action} ({j.rule})" if j.rule else j.action
            else:
                continue
            reasons[key] = reasons.get(key, 0) + 1
        return "; ".join(f"{k} x{n}" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1]))

    def to_json(self, profiles: Sequence[str]) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "profiles": {
                p: {
                    "success": self.success_count(p),
                    "of": len(self.trials_of(p)),
                    "trials": [
                        {"ok": t.ok, "ttfb_s": t.ttfb_s, "detail": t.detail}
                        for t in self.trials_of(p)
                    ],
                    "replay_agrees": self.replay_agrees.get(p),
                    "ttfb_ms": self.ttfb_ms(p),
                    "why": self.why(p),
                    "verdicts": [
                        None
                        if j is None
                        else {
                            "passed": j.passed,
                            "action": j.action,
                            "rule": j.rule,
                            "reason": j.reason,
                        }
                        for j in self.judged.get(p, [])
                    ],
                }
                for p in profiles
            },
        }


@dataclass
class Sweep:
    bench: Bench
    profiles: Sequence[str]
    trials: int = 3
    transport: str = "tcp"
    live: bool = False
    """Judge by the censor acting live (one run per profile) instead of a replay."""
    log: Callable[[str], None] = print
    results: list[StrategyResult] = field(default_factory=list)

    def _trials(self, strategy: Strategy, capture: Path) -> list[Trial]:
        with self.bench.capture(capture), self.bench.strategy(strategy):
            return [self.bench.trial(strategy, self.transport) for _ in range(self.trials)]

    def run_one(self, strategy: Strategy, capture: Path) -> StrategyResult:
        started = time.monotonic()
        result = StrategyResult(strategy.text(), [], {}, 0.0)
        try:
            if self.live:
                self._live(strategy, capture, result)
            else:
                result.trials = self._trials(strategy, capture)
                result.judged = judge_trials(
                    capture, result.trials, self.profiles, self.bench.target
                )
        except Exception as err:  # one broken strategy must not end the sweep
            result.error = f"{type(err).__name__}: {err}"
        result.seconds = time.monotonic() - started
        self.results.append(result)
        counts = " ".join(
            f"{p}={result.success_count(p)}/{len(result.trials_of(p))}" for p in self.profiles
        )
        error = result.error
        self.log(f"  {strategy.text():44s} {counts}{'  ERROR ' + error if error else ''}")
        return result

    def _live(self, strategy: Strategy, capture: Path, result: StrategyResult) -> None:
        """Each profile in turn acting live on the bench (censor.py); the capture of each run is
        also replayed, to count how often replay and live agree."""
        for profile in self.profiles:
            cap = capture.with_name(f"{capture.stem}-{profile}.pcap")
            with self.bench.censor(profile) as flows:
                trials = self._trials(strategy, cap)
            result.live_trials[profile] = trials
            opened = opened_ports(cap)
            result.judged[profile] = by_window(
                trials,
                [
                    (f["first_seen"], live_judgement(f))
                    for f in flows
                    if f["server"] == SERVER
                    and f["server_port"] == 443
                    and f["initiated_inside"]
                    and (f["proto"] != PROTO_TCP or f["client_port"] in opened)
                ],
            )
            replayed = judge_trials(cap, trials, [profile], self.bench.target)[profile]
            result.replay_agrees[profile] = sum(
                (a is not None and a.passed) == (b is not None and b.passed)
                for a, b in zip(result.judged[profile], replayed, strict=False)
            )

    def run(
        self, singles: Sequence[str], pairs: bool = True, max_pairs: int = 30
    ) -> list[StrategyResult]:
        directory = self.bench.dir / "captures"
        directory.mkdir(exist_ok=True)
        n = itertools.count()
        self.log(f"control (no strategy), {self.trials} trials:")
        self.run_one(NONE, directory / f"{next(n):03d}-none.pcap")
        self.log(f"singles ({len(singles)}):")
        single_results = [
            self.run_one(parse_any(spec), directory / f"{next(n):03d}-{_file(spec)}.pcap")
            for spec in singles
        ]
        if pairs:
            combos = pair_candidates(single_results, self.profiles, self.trials, max_pairs)
            self.log(f"pairs ({len(combos)}):")
            for strategy in combos:
                self.run_one(strategy, directory / f"{next(n):03d}-{_file(strategy.text())}.pcap")
        return self.results


def _file(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-=." else "_" for c in spec)[:60]


def pair_candidates(
    singles: Sequence[StrategyResult], profiles: Sequence[str], trials: int, max_pairs: int
) -> list[Strategy]:
    """Pairs of singles that failed at least one profile, best singles first."""
    failing = [r for r in singles if any(r.success_count(p) < trials for p in profiles)]
    failing.sort(key=lambda r: -sum(r.success_count(p) for p in profiles))
    out: list[Strategy] = []
    seen: set[str] = set()
    # Diagonal order (pairs of the two best, then of the three best, ...) so that a cap on the
    # count still gives every failing single a partner instead of pairing the best with all.
    indexed = sorted(itertools.combinations(range(len(failing)), 2), key=lambda ij: (ij[1], ij[0]))
    for i, j in indexed:
        a, b = failing[i], failing[j]
        if len(out) >= max_pairs:
            break
        try:
            combo = parse(f"{a.strategy}+{b.strategy}")
        except StrategySpecError:
            continue
        names = [s.name for s in combo.steps]
        if len(set(names)) < 2 or combo.text() in seen:
            continue
        seen.add(combo.text())
        out.append(combo)
    return out


def judge_trials(
    capture: Path, trials: Sequence[Trial], profiles: Sequence[str], target: str
) -> dict[str, list[Judgement | None]]:
    """Per profile, per trial: the judgement of its connections (time-window matching)."""
    out: dict[str, list[Judgement | None]] = {}
    server = bytes(int(x) for x in SERVER.split("."))
    opened = opened_ports(capture)
    for profile in profiles:
        result = replay_with_profile(read_capture(capture), engine(profile, target, SUBSCRIBER_NET))
        out[profile] = by_window(
            trials,
            [
                (fv.flow.first_seen, Judgement.of(fv))
                for fv in result.flows
                if fv.flow.server_addr == server
                and fv.flow.server_port == 443
                and fv.flow.initiated_inside
                and (fv.flow.proto != PROTO_TCP or fv.flow.client_port in opened)
            ],
        )
    return out


def opened_ports(capture: Path) -> set[int]:
    """Client ports of the TCP connections opened during the capture (their SYN is in it).

    A connection of an earlier run can still be retransmitting when the next run starts (a box
    that dropped it leaves the client's kernel retrying with exponential backoff); such packets
    belong to no trial of this run. Note that the kernel retransmits unacknowledged data as one
    segment: a split ClientHello dropped once comes back whole."""
    ports: set[int] = set()
    for _, linktype, frame in read_capture(capture):
        try:
            pkt = decode(frame, linktype)
        except DecodeError:
            continue
        if pkt.proto == PROTO_TCP and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            ports.add(pkt.sport)
    return ports


def live_judgement(flow: dict[str, Any]) -> Judgement:
    fates: dict[str, int] = flow["fates"]
    passed = flow["action"] in ("allow", "detect") and all(k == "forward" for k in fates)
    return Judgement(passed, flow["action"], flow["rule"], flow["reason"], fates)


def by_window(
    trials: Sequence[Trial], flows: Sequence[tuple[float, Judgement]]
) -> list[Judgement | None]:
    """Each flow goes to the trial whose time window holds its first packet (packets are stamped
    after their trial began); a trial keeps its first failing judgement, else a passing one."""
    starts = [t.started for t in trials] + [float("inf")]
    per_trial: list[Judgement | None] = [None] * len(trials)
    for first_seen, j in flows:
        i = next((k for k in range(len(trials)) if starts[k] <= first_seen < starts[k + 1]), None)
        if i is None:
            continue
        current = per_trial[i]
        if current is None or (current.passed and not j.passed):
            per_trial[i] = j
    return per_trial


def ranked(results: Sequence[StrategyResult], profile: str) -> list[StrategyResult]:
    """Best first: most successes, then the fewest steps (simpler to deploy), then the shortest
    median TTFB (differences of a few ms are noise here: the client process starts per trial)."""
    return sorted(
        (r for r in results if r.trials or r.live_trials),
        key=lambda r: (
            -r.success_count(profile),
            r.strategy.count("+"),
            r.ttfb_ms(profile) if r.ttfb_ms(profile) is not None else float("inf"),
        ),
    )
