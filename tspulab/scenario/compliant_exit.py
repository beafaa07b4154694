"""A VPN that complies with the law: its exit drops what the state registry lists.

The 2017 amendments made VPNs and anonymisers stop giving access to registry sites, and in 2019
the regulator ordered ten VPN services to connect to the state registry system (FGIS); only
Kaspersky Secure Connection did (docs/tspu-behaviour.md §10.1). A compliant service filters at
its own exit, whatever ISP its users come from, so its users still cannot reach a listed site
while its tunnel itself works. A method with `applies_registry: true` gets that filter here: an
nftables table of its own in its server's host (its cloud's namespace) that drops packets to
registry addresses, both forwarded ones (a TUN VPN's users) and the host's own (a proxy's
outgoing connections). The filter follows every published registry version at once: the
service reads the registry system itself, not through an ISP's update delay.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tspulab.dpi.registry import Registry
from tspulab.methods.process import run_checked


def table_name(method: str) -> str:
    """The nft table of one method's exit filter (unique per method, short)."""
    return "tspulab_exit_" + hashlib.blake2b(method.encode(), digest_size=4).hexdigest()


def exit_rules(method: str, registry: Registry) -> str:
    """The nft script that (re)creates the method's exit filter for `registry`'s addresses."""
    table = table_name(method)
    sets = []
    for family, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        nets = [str(n) for n in registry.aggregated_prefixes() if n.version == family]
        elements = f"    elements = {{ {', '.join(nets)} }}\n" if nets else ""
        sets.append(
            f"  set registry{family} {{\n    type {kind}\n    flags interval\n{elements}  }}\n"
        )
    drops = "    ip daddr @registry4 drop\n    ip6 daddr @registry6 drop\n"
    chains = "".join(
        f"  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n{drops}  }}\n"
        for hook in ("forward", "output")
    )
    # Creating then deleting first makes the script idempotent: a new version replaces the old.
    return f"table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{\n" + (
        "".join(sets) + chains + "}\n"
    )


def apply_exit_filter(node: Any, method: str, registry: Registry, directory: Path) -> int:
    """Install (or replace) `method`'s exit filter in `node`; returns the prefixes it drops.
    The script is kept in `directory` for the record."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"exit-filter-{table_name(method)}.nft"
    script.write_text(exit_rules(method, registry))
    run_checked(node, f"nft -f {script}", tool="nft (exit filter)")
    return len(registry.aggregated_prefixes())
