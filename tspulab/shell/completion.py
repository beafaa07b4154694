"""Tab completion for the lab shell: commands, node names, and each command's arguments
(subscribers, services, methods, ISPs, profiles). Every completion ends with a space, as bash
completes (Python's readline appends none itself)."""

from __future__ import annotations

import cmd
from typing import TYPE_CHECKING, Any

from tspulab.dpi.profile import profile_names

if TYPE_CHECKING:
    from tspulab.dpi.registry import Registry
    from tspulab.scenario.live import LiveLab

PROBE_KINDS = ("https", "http", "ping")


class Completion(cmd.Cmd):
    """Mixed into LabShell, whose `live`, `registries`, `profiles` and `node_names` it reads."""

    live: LiveLab
    registries: dict[str, Registry]
    profiles: dict[str, str | None]

    def node_names(self) -> list[str]:
        raise NotImplementedError

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        names = [*super().completenames(text, *ignored), *self.node_names()]
        return _starting(text, [n for n in names if n != "EOF"])

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return _starting(text, self.node_names())  # a node name stands for its address

    def complete_probe(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        position = len(line[:begidx].split())
        live = self.live
        choices: list[str] = {
            1: list(live.host_of),
            2: [s.name for s in live.scenario.services],
        }.get(position, ["direct", *(c.name for c in live.scenario.circumvention), *PROBE_KINDS])
        return _starting(text, choices)

    def complete_flows(self, text: str, *_rest: Any) -> list[str]:
        return _starting(text, [*self.live.isp_index, "all"])

    def complete_registry(self, text: str, line: str, begidx: int, _endidx: int) -> list[str]:
        position = len(line[:begidx].split())
        if position == 1:
            return _starting(text, ["add", "remove", "check"])
        if position == 2:
            names = [d for s in self.live.scenario.services for d in s.domains]
            return _starting(text, [*names, *self.live.addresses.values()])
        return _starting(text, list(self.registries))

    def complete_profile(self, text: str, line: str, begidx: int, _endidx: int) -> list[str]:
        position = len(line[:begidx].split())
        return _starting(text, profile_names() if position == 1 else list(self.profiles))

    def complete_capture(self, text: str, line: str, begidx: int, _endidx: int) -> list[str]:
        position = len(line[:begidx].split())
        return _starting(text, ["start", "stop"] if position == 1 else list(self.profiles))

    def complete_help(self, text: str, *_rest: Any) -> list[str]:
        return _starting(text, [n for n in super().completenames(text) if n != "EOF"])


def _starting(text: str, choices: list[str]) -> list[str]:
    """The choices that complete `text`, each followed by a space, as bash completes (Python's
    readline appends none itself)."""
    return [f"{c} " for c in dict.fromkeys(choices) if c.startswith(text)]
