"""`hops:` (tspulab/scenario/hops.py) and the ISP path it builds (topologies/hops.py): the key's
defaults and errors at file:line:field, the routers, links, addresses and routes of the topology,
and the traceroute parser. The live check is tests/emulation/strategies/test_hops.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.lab.trace import parse_ping
from tspulab.scenario.build import plan_lab
from tspulab.scenario.schema import ScenarioError, load_scenario_text
from tspulab.topologies.hops import PathHops, router_names
from tspulab.topologies.multi_isp import CloudSpec, IspSpec, MultiIspSpec, MultiIspTopo

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN = (REPO / "tests" / "scenarios" / "valid" / "campaign.yaml").read_text(encoding="utf-8")
DEMO = (REPO / "scenarios" / "demo.yaml").read_text(encoding="utf-8")
SINGLE_TOPOLOGY = "topology:\n  name: single-isp\n"


def _single(hops: str) -> str:
    assert SINGLE_TOPOLOGY in DEMO
    return DEMO.replace(SINGLE_TOPOLOGY, f"{SINGLE_TOPOLOGY}  hops: {hops}\n")


def _errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "h.yaml")
    return [str(e) for e in info.value.errors]


def _hops(text: str) -> list[PathHops]:
    return [isp.hops for isp in plan_lab(load_scenario_text(text, "h.yaml")).topology.isps]


# --- the scenario key --------------------------------------------------------------------------


def test_without_hops_the_path_is_the_one_router_path_of_before() -> None:
    assert _hops(DEMO) == [PathHops(tspu=0, border=1)]
    assert _hops(CAMPAIGN) == [PathHops(), PathHops()]


def test_topology_hops_apply_to_the_single_isp() -> None:
    assert _hops(_single("{tspu: 2, border: 5}")) == [PathHops(tspu=2, border=5)]
    assert _hops(_single("{border: 4}")) == [PathHops(tspu=0, border=4)]
    assert _hops(_single("{tspu: 5, border: 5}")) == [PathHops(tspu=5, border=5)]


def test_an_isp_overrides_topology_hops() -> None:
    text = CAMPAIGN.replace(
        "topology:\n  name: isps\n", "topology:\n  name: isps\n  hops: {border: 3}\n"
    )
    text = text.replace(
        "  - name: smallnet\n", "  - name: smallnet\n    hops: {tspu: 6, border: 8}\n"
    )
    assert _hops(text) == [PathHops(tspu=0, border=3), PathHops(tspu=6, border=8)]


@pytest.mark.parametrize(
    ("hops", "message"),
    [
        ("{tspu: 3}", "h.yaml:14:10: topology.hops.tspu: the TSPU after 3 routers is beyond the "
                      "border router at hop 1"),
        ("{tspu: 2, border: 0}", "h.yaml:14:19: topology.hops.border: 0 is out of range: must "
                                 "be at least 1"),
        ("{border: 17}", "h.yaml:14:10: topology.hops.border: 17 is out of range: must be at "
                         "most 16"),
        ("{tspu: -1}", "h.yaml:14:10: topology.hops.tspu: -1 is out of range: must be at least 0"),
        ("{tspu: '2'}", "h.yaml:14:10: topology.hops.tspu: expected an integer"),
        ("{tsp: 1}", "h.yaml:14:10: topology.hops.tsp: unknown key 'tsp'; did you mean 'tspu'?"),
        ("2", "h.yaml:14:3: topology.hops: expected a mapping, got an integer 2"),
    ],
)  # fmt: skip
def test_bad_hops_are_reported_at_their_line_and_field(hops: str, message: str) -> None:
    errors = _errors(_single(hops))
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_a_bad_isp_hops_names_the_isp_item() -> None:
    text = CAMPAIGN.replace(
        "  - name: smallnet\n", "  - name: smallnet\n    hops: {tspu: 4, border: 2}\n"
    )
    (error,) = _errors(text)
    assert error.startswith("h.yaml:22:12: isps[1].hops.tspu: the TSPU after 4 routers"), error


def test_path_hops_refuse_impossible_paths() -> None:
    with pytest.raises(ValueError, match=r"TSPU hop 3 is not in 0\.\.2"):
        PathHops(tspu=3, border=2)
    with pytest.raises(ValueError, match="border hop 0"):
        PathHops(tspu=0, border=0)


# --- the topology it builds -----------------------------------------------------------------


def _topo(hops: PathHops) -> MultiIspTopo:
    spec = MultiIspSpec(
        isps=(IspSpec("a", 1, hops), IspSpec("b", 1)),
        clouds=(CloudSpec("cl1", ("18.196.0.0/15",), "aws"),),
    )
    return MultiIspTopo(spec=spec)


def _chain(topo: MultiIspTopo, start: str, stop: str) -> list[tuple[str, str, int, int]]:
    """The links on the shortest way from `start` to `stop` (a, b, port on a, port on b)."""
    ends: dict[str, list[tuple[str, int, int]]] = {}
    for a, b, info in topo.links(withInfo=True):
        if info.get("node1") not in (None, a):  # Topo may store the link the other way round
            a, b = b, a
        ends.setdefault(a, []).append((b, info["port1"], info["port2"]))
        ends.setdefault(b, []).append((a, info["port2"], info["port1"]))
    paths: dict[str, list[tuple[str, str, int, int]]] = {start: []}
    queue = [start]
    while queue:
        here = queue.pop(0)
        for there, mine, theirs in ends.get(here, []):
            if there not in paths:
                paths[there] = [*paths[here], (here, there, mine, theirs)]
                queue.append(there)
    return paths[stop]


def test_the_default_path_is_access_tspu_border_exchange() -> None:
    topo = _topo(PathHops())
    hops = [(a, b) for a, b, _, _ in _chain(topo, "a1", "ix")]
    assert hops == [("a1", "t1"), ("t1", "r1"), ("r1", "ix")]
    assert topo.nodeInfo("r1")["ip"] == "10.1.0.1/24"
    assert router_names(1, PathHops()) == ("r1",)


def test_routers_and_the_tspu_sit_at_their_hops() -> None:
    topo = _topo(PathHops(tspu=2, border=4))
    chain = _chain(topo, "a1", "ix")
    assert [(a, b) for a, b, _, _ in chain] == [
        ("a1", "r1h1"), ("r1h1", "r1h2"), ("r1h2", "t1"), ("t1", "r1h3"), ("r1h3", "r1"),
        ("r1", "ix"),
    ]  # fmt: skip
    # the TSPU's port 1 faces the subscribers, port 2 the upstream
    assert (chain[2][3], chain[3][2]) == (1, 2)
    info = {name: topo.nodeInfo(name) for name in ("r1h1", "r1h2", "r1h3", "r1")}
    assert info["r1h1"]["ip"] == "10.1.0.1/24"  # the subscribers' gateway is hop 1
    assert info["r1h1"]["static_routes"] == (("0.0.0.0/0", "10.1.1.2"),)
    assert info["r1h2"]["ip"] == "10.1.1.2/30"
    assert info["r1h2"]["static_routes"] == (("10.1.0.0/16", "10.1.1.1"), ("0.0.0.0/0", "10.1.2.2"))
    assert info["r1"]["ip"] == "10.1.3.2/30"
    assert info["r1"]["static_routes"][0] == ("10.1.0.0/16", "10.1.3.1")
    # the other ISP keeps the default path
    assert [(a, b) for a, b, _, _ in _chain(topo, "a2", "ix")] == [
        ("a2", "t2"), ("t2", "r2"), ("r2", "ix")
    ]  # fmt: skip


def test_backbone_placement_puts_the_tspu_on_the_border_uplink() -> None:
    chain = _chain(_topo(PathHops(tspu=2, border=2)), "a1", "ix")
    assert [(a, b) for a, b, _, _ in chain] == [
        ("a1", "r1h1"), ("r1h1", "r1"), ("r1", "t1"), ("t1", "ix"),
    ]  # fmt: skip


def test_clouds_route_the_whole_isp_block_to_its_border() -> None:
    routes = _topo(PathHops(tspu=1, border=3)).nodeInfo("cl1")["static_routes"]
    assert ("10.1.0.0/16", "100.64.1.1") in routes and ("10.2.0.0/16", "100.64.1.2") in routes


def test_interface_names_fit_the_kernel_limit() -> None:
    topo = MultiIspTopo(spec=MultiIspSpec(isps=tuple(
        IspSpec(f"i{n}", 1, PathHops(tspu=16, border=16)) for n in range(12)
    )))  # fmt: skip
    for a, b, info in topo.links(withInfo=True):
        for end, n in ((a, "1"), (b, "2")):
            assert len(info.get(f"intfName{n}") or f"{end}-eth{info[f'port{n}']}") <= 15


# --- traceroute --------------------------------------------------------------------------------


def test_ping_outputs_become_hops() -> None:
    exceeded = (
        "PING 104.244.42.1 (104.244.42.1) 56(84) bytes of data.\n"
        "From 10.1.1.2 icmp_seq=1 Time to live exceeded\n"
    )
    reply = "64 bytes from 104.244.42.1: icmp_seq=1 ttl=61 time=0.3 ms\n"
    silent = "PING 104.244.42.1 (104.244.42.1) 56(84) bytes of data.\n\n--- 1 packets, 0 received"
    assert parse_ping(2, exceeded) == parse_ping(2, exceeded)
    assert (parse_ping(2, exceeded).address, parse_ping(2, exceeded).reached) == ("10.1.1.2", False)
    assert (parse_ping(4, reply).address, parse_ping(4, reply).reached) == ("104.244.42.1", True)
    assert (parse_ping(3, silent).address, parse_ping(3, silent).reached) == (None, False)


def test_a_tspu_on_the_uplink_keeps_the_exchange_delay() -> None:
    from tspulab.lab.linkshape import node_roles, plan_links, topo_link_ends
    from tspulab.scenario.links import Links

    spec = MultiIspSpec(isps=(IspSpec("a", 1, PathHops(tspu=2, border=2)),))
    planned = plan_links(topo_link_ends(MultiIspTopo(spec=spec)), node_roles(spec), Links(), {})
    exchange = [p.ends for p in planned if p.link_class == "exchange"]
    assert [(a[0], b[0]) for a, b in exchange] == [("t1", "ix")]


def test_every_router_address_is_inside_the_labs_own_ranges() -> None:
    """Cloud prefixes may not overlap LAB_RANGES (scalars.py), so no scenario can collide with
    a router of any path."""
    import ipaddress

    from tspulab.scenario.scalars import LAB_RANGES

    topo = _topo(PathHops(tspu=3, border=6))
    found = [topo.nodeInfo(n).get("ip") for n in topo.hosts() if n.startswith("r")]
    found += [
        info[f"params{n}"]["ip"] for _, _, info in topo.links(withInfo=True)
        for n in "12" if "ip" in info.get(f"params{n}", {})
    ]  # fmt: skip
    assert len(found) >= 12
    for address in found:
        net = ipaddress.ip_interface(address).network
        assert any(net.subnet_of(r) for r, _ in LAB_RANGES), address
