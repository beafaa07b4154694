"""Link delay, jitter and loss on a running lab, with netem, from the scenario's `links:` section.

One call, once the lab's network is up (interfaces exist, before traffic):

    record = shape_links(lab.net, scenario, topology_spec, run_dir, no_delays=False)
    meta["delays"] = record            # run.json says what the run had

Each link's class comes from the topology's documented node roles (topologies/multi_isp.py:
subscriber hosts `i<k>s<n>`, access switch `a<k>`, TSPU `t<k>`, border router `r<k>`, exchange
`ix`, cloud hosts, the resolver `dns1`; topologies/single_isp.py has the one-ISP names `sub<n>`,
`acc1`, `tspu1`, `r1`, `tr1`). A link's round-trip delay and jitter are split evenly between its
two ends, each end getting a netem root qdisc on its egress; loss applies at each end (so each
direction). All of one namespace's qdiscs go in one `tc -batch` file (`<run dir>/netem/<node>.tc`),
one process per namespace: in the test VM a process costs 40-55x what it costs on the host.

With jitter, netem reorders packets (each draws its own delay), which real access links do not do
and which TCP takes for loss; a `rate` far above any lab traffic makes netem queue in order.
netem's default queue of 1,000 packets would drop at 50 ms and more than ~200 Mbit/s, so the
limit is raised.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tspulab.scenario.links import Links, Shape

Role = Literal["subscriber", "access", "tspu", "router", "exchange", "cloud", "dns"]
#: The one ISP of a single-ISP topology (tspulab.scenario.model.DEFAULT_ISP).
DEFAULT_ISP = "isp"
NETEM_LIMIT_PACKETS = 100_000
IN_ORDER_RATE = "100gbit"


class DelaysUnavailable(RuntimeError):
    """The scenario requires link delays and this kernel cannot emulate them."""


class LinkShapingError(RuntimeError):
    """tc refused a netem qdisc."""


@dataclass(frozen=True)
class NodeRole:
    role: Role
    isp: str | None = None
    cloud: str | None = None


@dataclass(frozen=True)
class PlannedLink:
    """One shaped link: its class, shape and its two ends as (node, interface)."""

    link_class: str
    shape: Shape
    ends: tuple[tuple[str, str], tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"class": self.link_class, **self.shape.to_json(),
                "ends": [f"{node}:{intf}" for node, intf in self.ends]}  # fmt: skip


# --- can this kernel do it -----------------------------------------------------------------


@functools.cache
def netem_supported() -> bool:
    """Whether a netem qdisc can be made here: loaded, loadable, or built in (tried on the
    loopback of a throwaway network namespace, so nothing of the machine is touched)."""
    if Path("/sys/module/sch_netem").exists():
        return True
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "sch_netem"], check=False, capture_output=True)
        if Path("/sys/module/sch_netem").exists():
            return True
    if not (shutil.which("unshare") and shutil.which("tc")):
        return False
    probe = subprocess.run(
        ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        check=False, capture_output=True, timeout=30,
    )  # fmt: skip
    return probe.returncode == 0


@dataclass(frozen=True)
class Decision:
    apply: bool
    why: str


def decide(links: Links | None, *, no_delays: bool, netem: bool, scenario: str = "") -> Decision:
    """Whether to apply the scenario's delays; DelaysUnavailable when it requires them and this
    kernel has no netem (and `--no-delays` was not given)."""
    if links is None:
        return Decision(False, "the scenario has no links: section")
    if no_delays:
        return Decision(False, "--no-delays")
    if not netem:
        if links.required:
            raise DelaysUnavailable(
                f"{scenario or 'the scenario'}: links: requires emulated delays, and this kernel "
                "has no netem (sch_netem). Run it where netem exists (the VM of docs/vm.md: "
                "`make vm`), set links.required: false, or pass --no-delays to run without them"
            )
        return Decision(False, "no netem on this kernel (links.required: false)")
    return Decision(True, "netem")


# --- which link is which -------------------------------------------------------------------


def node_roles(spec: Any) -> dict[str, NodeRole]:
    """Node name -> role, for a MultiIspSpec or a SingleIspSpec (by their documented names)."""
    roles: dict[str, NodeRole] = {}
    if hasattr(spec, "isps"):  # topologies/multi_isp.py
        for i, isp in enumerate(spec.isps, start=1):
            for n in range(1, isp.subscribers + 1):
                roles[isp.host(i, n)] = NodeRole("subscriber", isp=isp.name)
            roles[spec.access_switch(i)] = NodeRole("access", isp=isp.name)
            roles[spec.tspu_switch(i)] = NodeRole("tspu", isp=isp.name)
            roles[f"r{i}"] = NodeRole("router", isp=isp.name)
            flt = getattr(isp, "old_filter", None)
            if flt is not None:
                # the ISP's old filter is a bump in the wire (topologies/oldfilter.py): on the
                # border's uplink that link keeps its exchange delay on the router's side of it;
                # inside the ISP, links get nothing (as next to a TSPU)
                at_border = flt.hop is None or flt.hop == isp.hops.border
                roles[f"o{i}"] = NodeRole("exchange" if at_border else "tspu", isp=isp.name)
        roles[spec.exchange_switch] = NodeRole("exchange")
    else:  # topologies/single_isp.py
        for n in range(1, spec.subscribers + 1):
            roles[f"sub{n}"] = NodeRole("subscriber", isp=DEFAULT_ISP)
        roles[spec.access_switch] = NodeRole("access", isp=DEFAULT_ISP)
        roles[spec.tspu_switch] = NodeRole("tspu", isp=DEFAULT_ISP)
        roles["r1"] = NodeRole("router", isp=DEFAULT_ISP)
        roles[spec.transit_switch] = NodeRole("exchange")
    for cloud in spec.clouds:
        roles[cloud.host] = NodeRole("cloud", cloud=cloud.label or cloud.host)
    roles["dns1"] = NodeRole("dns")
    return roles


def classify(
    a: NodeRole, b: NodeRole, links: Links, domestic: Mapping[str, bool]
) -> tuple[str, Shape] | None:
    """The class and shape of the link between two nodes; None for links inside an ISP."""
    by_role = {a.role: a, b.role: b}
    if by_role.keys() == {"subscriber", "access"}:
        access = links.access_of(by_role["subscriber"].isp or DEFAULT_ISP)
        return access, links.class_shape(access)
    if by_role.keys() in ({"router", "exchange"}, {"tspu", "exchange"}):
        # a TSPU on the border's uplink (hops.tspu == hops.border) sits in that link's place
        return "exchange", links.class_shape("exchange")
    if by_role.keys() == {"cloud", "exchange"}:
        cloud = by_role["cloud"].cloud or ""
        is_domestic = domestic.get(cloud, False)
        return links.cloud_class(is_domestic), links.cloud_shape(cloud, is_domestic)
    if by_role.keys() == {"dns", "exchange"}:
        return "domestic", links.class_shape("domestic")
    return None


def plan_links(
    pairs: Iterable[tuple[tuple[str, str], tuple[str, str]]],
    roles: Mapping[str, NodeRole],
    links: Links,
    domestic: Mapping[str, bool],
) -> list[PlannedLink]:
    """Shaped links among `pairs` of ends ((node, interface), (node, interface))."""
    planned = []
    for end1, end2 in pairs:
        r1, r2 = roles.get(end1[0]), roles.get(end2[0])
        if r1 is None or r2 is None:
            continue
        found = classify(r1, r2, links, domestic)
        if found is not None and not found[1].empty:
            planned.append(PlannedLink(found[0], found[1], (end1, end2)))
    return planned


def topo_link_ends(topo: Any) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The ends of every link of a Mininet Topo before it is built, with the interface names
    Mininet will give them (`intfName` when the topology sets one, else `<node>-eth<port>`)."""
    pairs = []
    for n1, n2, info in topo.links(sort=True, withInfo=True):
        if info.get("node1") not in (None, n1):  # Topo may store the link the other way round
            n1, n2 = n2, n1
        i1 = info.get("intfName1") or f"{n1}-eth{info['port1']}"
        i2 = info.get("intfName2") or f"{n2}-eth{info['port2']}"
        pairs.append(((n1, i1), (n2, i2)))
    return pairs


def netem_args(shape: Shape) -> str:
    """netem parameters for one end of a link: half the round trip's delay and jitter, and the
    loss of one direction."""
    args = [f"limit {NETEM_LIMIT_PACKETS}", f"delay {round(shape.delay_ms * 500)}us"]
    if shape.jitter_ms:
        args.append(f"{round(shape.jitter_ms * 500)}us")
    if shape.loss_pct:
        args.append(f"loss {shape.loss_pct:g}%")
    if shape.jitter_ms:
        args.append(f"rate {IN_ORDER_RATE}")
    return " ".join(args)


def batch_files(planned: Iterable[PlannedLink]) -> dict[str, list[str]]:
    """Node name -> the `tc -batch` lines that shape its ends."""
    lines: dict[str, list[str]] = defaultdict(list)
    for link in planned:
        for node, intf in link.ends:
            lines[node].append(f"qdisc replace dev {intf} root netem {netem_args(link.shape)}")
    return dict(lines)


# --- on the running lab --------------------------------------------------------------------


def apply_netem(net: Any, planned: list[PlannedLink], directory: Path) -> None:
    """One `tc -batch` per namespace (node), each run by that node's shell."""
    directory.mkdir(parents=True, exist_ok=True)
    for node_name, lines in batch_files(planned).items():
        path = directory / f"{node_name}.tc"
        path.write_text("\n".join(lines) + "\n")
        out = net.get(node_name).cmd(f"tc -batch {path}; echo tc-rc=$?")
        if "tc-rc=0" not in out:
            raise LinkShapingError(f"tc -batch {path} in {node_name} failed: {out.strip()}")


def shape_links(
    net: Any, scenario: Any, spec: Any, run_dir: Path, *, no_delays: bool = False
) -> dict[str, Any]:
    """Apply the scenario's link delays to a running Mininet network; return what was done,
    for run.json (`applied`, `why`, `netem`, and each shaped link).

    `scenario` is a tspulab Scenario, `spec` the MultiIspSpec or SingleIspSpec the topology
    was built from. Raises DelaysUnavailable as `decide` does (better checked before bring-up).
    """
    netem = netem_supported()
    decision = decide(scenario.links, no_delays=no_delays, netem=netem, scenario=scenario.name)
    record: dict[str, Any] = {"applied": decision.apply, "why": decision.why, "netem": netem}
    if scenario.links is None:
        return record
    domestic = {c.name: c.domestic for c in scenario.clouds}
    pairs = [((lk.intf1.node.name, lk.intf1.name), (lk.intf2.node.name, lk.intf2.name))
             for lk in net.links]  # fmt: skip
    planned = plan_links(pairs, node_roles(spec), scenario.links, domestic)
    record["links"] = [p.to_json() for p in planned]
    if decision.apply:
        apply_netem(net, planned, run_dir / "netem")
    return record
