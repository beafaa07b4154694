"""`tspulab replay --profile NAME`: replay a capture through the TSPU engine and print verdicts.

The engine is the one the live controller runs (tspulab.dpi.engine), so a capture replayed here
gets the verdicts the emulation would give. One line per flow: its 5-tuple, protocol and name, the
verdict (action, pending or final, rule, reason) and how many of its packets were forwarded,
dropped or reset.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.engine_replay import ProfileReplay, replay_with_profile
from tspulab.dpi.errors import Malformed
from tspulab.dpi.flow import Network
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.profile import ProfileError, load_profile
from tspulab.dpi.registry import Registry, RegistryLoadError, load_inline, load_list


def build_registry(files: Sequence[str], inline: Sequence[str]) -> Registry:
    """The block registry from list files (one entry a line) and inline entries."""
    registry = Registry()
    for path in files:
        registry.merge(load_list(path))
    if inline:
        registry.merge(load_inline(list(inline), "--registry-inline"))
    return registry


def format_replay(path: str, profile: str, result: ProfileReplay) -> list[str]:
    lines = [f"{path}: {result.frames} frames, {len(result.flows)} flows, profile {profile}"]
    for fv in result.flows:
        record = fv.to_json()
        v = fv.verdict
        name = record["sni"] or ""
        packets = " ".join(f"{k}={n}" for k, n in sorted(fv.fates.items()))
        lines.append(
            f"{record['transport']} {record['client']} -> {record['server']} "
            f"[{record['protocol'] or '-'}{' ' + str(name) if name else ''}] "
            f"{v.short()} rule={v.rule or '-'} ({packets}): {v.reason}"
        )
    for event in result.detections:
        lines.append(
            f"detect t={event.time:.3f} subscriber={event.subscriber} protocol={event.protocol} "
            f"server={event.server}:{event.server_port}/{event.transport} rule={event.rule}"
        )
    if result.undecoded:
        lines.append(f"not decoded (forwarded): {result.undecoded} frames")
    return lines


def run_profile_replay_cli(
    path: str,
    profile: str,
    subscriber_nets: Sequence[Network],
    registry_files: Sequence[str],
    registry_inline: Sequence[str],
    as_json: bool,
) -> int:
    """Print per-flow verdicts; 2 on an unreadable capture, profile or registry."""
    try:
        loaded = load_profile(profile)
        registry = build_registry(registry_files, registry_inline)
        engine = TspuEngine(loaded, registry, subscriber_nets)
        result = replay_with_profile(read_capture(path), engine)
    except (ProfileError, RegistryLoadError, ValueError, OSError, Malformed) as err:
        print(f"tspulab replay: {err}", file=sys.stderr)
        return 2
    if as_json:
        for fv in result.flows:
            print(json.dumps(fv.to_json(), sort_keys=True))
        return 0
    print("\n".join(format_replay(path, profile, result)))
    return 0
