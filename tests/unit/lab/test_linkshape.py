"""Which link gets which netem, from the topology's node roles; refusal without netem."""

from __future__ import annotations

import pytest

from tspulab.lab.linkshape import (
    DelaysUnavailable,
    batch_files,
    decide,
    netem_args,
    node_roles,
    plan_links,
    topo_link_ends,
)
from tspulab.scenario.links import DEFAULTS, Links, Shape, parse_links
from tspulab.topologies.multi_isp import CloudSpec, IspSpec, MultiIspSpec, MultiIspTopo

CLOUDS = (
    CloudSpec("cl1", ("18.196.0.0/15",), "aws-fra"),
    CloudSpec("cl2", ("77.88.55.0/24",), "yandex"),
)
DOMESTIC = {"aws-fra": False, "yandex": True}


def _multi() -> tuple[MultiIspSpec, MultiIspTopo]:
    spec = MultiIspSpec(isps=(IspSpec("rostelecom", 2), IspSpec("megafon", 1)), clouds=CLOUDS)
    return spec, MultiIspTopo(spec=spec)


def test_multi_isp_links_get_their_class() -> None:
    spec, topo = _multi()
    links = parse_links({"isps": {"megafon": "mobile"}, "clouds": {"aws-fra": {"loss": "1%"}}})
    planned = plan_links(topo_link_ends(topo), node_roles(spec), links, DOMESTIC)
    by_end = {end[0]: p for p in planned for end in p.ends}
    assert by_end["i1s1"].link_class == "fibre" and by_end["i1s2"].link_class == "fibre"
    assert by_end["i2s1"].link_class == "mobile"
    assert by_end["i2s1"].shape == DEFAULTS["mobile"]
    assert by_end["r1"].link_class == by_end["r2"].link_class == "exchange"
    assert by_end["cl1"].link_class == "foreign"
    assert by_end["cl1"].shape == Shape(DEFAULTS["foreign"].delay_ms, 0.0, 1.0)
    assert by_end["cl2"].link_class == "domestic" and by_end["dns1"].link_class == "domestic"
    # Access-TSPU-router links inside an ISP are not shaped: the TSPU sits by the subscribers.
    assert {"t1", "t2"}.isdisjoint(by_end)
    assert len(planned) == 3 + 2 + 2 + 1
    # Each link's switch end is named, so netem goes on both veth ends.
    assert ("a2", "a2-eth1") in by_end["i2s1"].ends


def test_one_isp_topology_roles() -> None:
    """A scenario without `isps` is one ISP on the same topology."""
    spec = MultiIspSpec(isps=(IspSpec("isp", 2),), clouds=CLOUDS)
    planned = plan_links(topo_link_ends(MultiIspTopo(spec=spec)), node_roles(spec),
                         parse_links({"access": "dsl"}), DOMESTIC)  # fmt: skip
    classes = sorted((p.ends[0][0], p.link_class) for p in planned)
    assert classes == [("cl1", "foreign"), ("cl2", "domestic"), ("dns1", "domestic"),
                       ("i1s1", "dsl"), ("i1s2", "dsl"), ("r1", "exchange")]  # fmt: skip


def test_zero_shapes_are_left_alone() -> None:
    spec, topo = _multi()
    zero = {"delay": "0ms", "jitter": "0ms", "loss": "0%"}
    links = parse_links({"classes": {c: zero for c in ("fibre", "exchange", "domestic")}})
    planned = plan_links(topo_link_ends(topo), node_roles(spec), links, DOMESTIC)
    assert {p.link_class for p in planned} == {"foreign"}


def test_netem_arguments_split_the_round_trip() -> None:
    assert netem_args(Shape(50.0)) == "limit 100000 delay 25000us"
    # Jitter is split too; a high rate keeps netem from reordering; loss is per direction.
    assert netem_args(Shape(40.0, 8.0, 0.5)) == (
        "limit 100000 delay 20000us 4000us loss 0.5% rate 100gbit"
    )


def test_one_batch_per_namespace() -> None:
    spec, topo = _multi()
    planned = plan_links(topo_link_ends(topo), node_roles(spec), Links(), DOMESTIC)
    files = batch_files(planned)
    # Switch ends all live in the lab's namespace (a switch node per name here, as Mininet runs
    # their commands), host ends in each host's own namespace.
    assert files["i1s1"] == ["qdisc replace dev i1s1-eth0 root netem limit 100000 delay 1000us"]
    assert len(files["ix"]) == 2 + 2 + 1
    assert sum(len(v) for v in files.values()) == 2 * len(planned)


def test_refusal_without_netem_names_the_way_out() -> None:
    links = Links()
    with pytest.raises(DelaysUnavailable, match="--no-delays"):
        decide(links, no_delays=False, netem=False, scenario="twitter-2021")
    assert decide(links, no_delays=True, netem=False) == decide(links, no_delays=True, netem=True)
    assert not decide(links, no_delays=True, netem=False).apply
    assert decide(links, no_delays=False, netem=True).apply
    optional = parse_links({"required": False})
    assert not decide(optional, no_delays=False, netem=False).apply
    assert not decide(None, no_delays=False, netem=False).apply
