"""Input from people the user may not trust: the YAML loader's limits, `data:` paths that stay in
the data folder, and addresses no lab host can have (issue 16, the three input findings).

The invalid files under tests/scenarios/invalid/ (yaml_*, data_path_*, dns_loopback, ...) show
each error as a user sees it; here are the boundaries (a file exactly at a limit loads), the cost
(the billion laughs is refused in milliseconds and a few MB) and the notes `validate` prints.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tspulab import cli
from tspulab.dpi.yamlload import LIMITS, YamlLimits, parse_yaml, read_yaml
from tspulab.scenario import scalars
from tspulab.scenario.check_context import PrefixIndex, cloud_overlaps
from tspulab.scenario.model import Cloud
from tspulab.scenario.paths import data_path_problem, outside_note, resolve_data_path
from tspulab.scenario.scalars import lab_address_problem, parse_duration
from tspulab.scenario.schema import ScenarioError, load_scenario, load_scenario_text

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "demo.yaml"
INVALID = REPO / "tests" / "scenarios" / "invalid"


def _only(err: pytest.ExceptionInfo[ScenarioError]) -> str:
    (one,) = err.value.errors
    return str(one)


def _laughs(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


# --- YAML limits ------------------------------------------------------------------------------


def test_billion_laughs_is_refused_fast_and_small() -> None:
    tracemalloc.start()
    began = time.perf_counter()
    with pytest.raises(ScenarioError) as err:
        parse_yaml(_laughs(9), "laughs.yaml")
    took = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert _only(err).startswith("laughs.yaml:5:")
    assert "more than 50000 values once aliases are expanded" in _only(err)
    assert took < 1.0 and peak < 20 * 1024 * 1024, (took, peak)


def test_alias_expansion_exactly_at_the_limit_loads() -> None:
    # The mapping, then per level a key, a list and its items: l0's list is 4 values, l1's
    # 1 + 3 * 4 = 13 and l2's 1 + 3 * 13 = 40.
    text = _laughs(3, width=3)
    values = 1 + (1 + 4) + (1 + 13) + (1 + 40)
    doc = parse_yaml(text, "x.yaml", YamlLimits(max_values=values))
    assert len(doc.data["l2"]) == 3 and doc.data["l2"][0] == [["lol"] * 3] * 3
    with pytest.raises(ScenarioError, match="more than 60 values"):
        parse_yaml(text, "x.yaml", YamlLimits(max_values=values - 1))


def test_nesting_depth_boundary_and_through_aliases() -> None:
    limits = YamlLimits(max_depth=4)
    parse_yaml("a: [[[1]]]\n", "x.yaml", limits)  # mapping + 3 lists = 4 levels
    with pytest.raises(ScenarioError) as err:
        parse_yaml("a: [[[[1]]]]\n", "x.yaml", limits)
    assert _only(err) == "x.yaml:1:7: YAML: nested deeper than 4 levels (limit on nesting depth)"
    # Shallow where it is written, too deep where the alias lands.
    with pytest.raises(ScenarioError, match="nested deeper than 4 levels") as err:
        parse_yaml("a: &d [[1]]\nb: [[*d]]\n", "x.yaml", limits)
    assert _only(err).startswith("x.yaml:2:6:")


def test_collection_size_boundary() -> None:
    limits = YamlLimits(max_items=3)
    parse_yaml("a: [1, 2, 3]\nb: {x: 1, y: 2}\nc: 3\n", "x.yaml", limits)
    with pytest.raises(ScenarioError) as err:
        parse_yaml("a: [1, 2, 3, 4]\n", "x.yaml", limits)
    assert (
        _only(err) == "x.yaml:1:14: YAML: a list with more than 3 items (limit on collection size)"
    )
    with pytest.raises(ScenarioError) as err:
        parse_yaml("a: 1\nb: 2\nc: 3\nd: 4\n", "x.yaml", limits)
    assert _only(err) == (
        "x.yaml:4:1: YAML: a mapping with more than 3 keys (limit on collection size)"
    )


def test_real_collection_limit_on_a_scenario(tmp_path: Path) -> None:
    entries = ", ".join(f"1.{i // 256}.{i % 256}.0/24" for i in range(LIMITS.max_items + 1))
    text = DEMO.read_text().replace("  - inline: [18.196.0.0/15]", f"  - inline: [{entries}]")
    path = tmp_path / "long.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "a list with more than 10000 items (limit on collection size)" in _only(err)
    assert _only(err).startswith(f"{path}:23:")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ScenarioError) as err:
        parse_yaml("a: &r {b: *r}\n", "x.yaml")
    assert "alias *r refers to a mapping or list that contains it" in _only(err)
    # An alias to a finished sibling is fine, and is expanded in the plain data.
    assert parse_yaml("a: &r {b: 1}\nc: *r\n", "x.yaml").data == {"a": {"b": 1}, "c": {"b": 1}}


def test_file_size_limit_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "# padding\n" * 200)
    limits = YamlLimits(max_bytes=100)
    with pytest.raises(ScenarioError) as err:
        read_yaml(big, "big.yaml", limits)
    assert _only(err) == (
        "big.yaml:11:6: the file is longer than the limit of 100 bytes for a YAML file "
        "(long lists belong in a registry file)"
    )
    # An endless file (a device) is refused after max_bytes + 1 bytes, not read to its end.
    began = time.perf_counter()
    with pytest.raises(ScenarioError, match="longer than the limit of 262144 bytes"):
        load_scenario("/dev/zero")
    assert time.perf_counter() - began < 5


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2018-13-01T00:00:00Z", "month must be in 1..12"),
        ("2018-02-30", "day is out of range for month"),
        ("1" * 5000, "'11111111111111111111...(5000 characters)': Exceeds the limit (4300 digits)"),
        ("!!int x", "cannot read the value 'x'"),
        ("!!float x", "cannot read the value 'x'"),
    ],
)
def test_values_ruamel_cannot_build_are_positioned_errors(value: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_yaml(f"version: 1\nat: {value}\n", "x.yaml")
    assert _only(err).startswith("x.yaml:2:5: YAML: cannot read the value")
    assert fragment in _only(err)


def test_shipped_scenarios_and_profiles_are_far_below_the_limits() -> None:
    # telegram-2018 is the largest: 71 services, 60 of them its generated population (19.6 KB).
    tight = YamlLimits(max_bytes=24_000, max_depth=8, max_items=80, max_values=1_500)
    files = [*(REPO / "scenarios").glob("*.yaml"), *(REPO / "tspulab" / "profiles").glob("*.yaml")]
    assert len(files) >= 10
    for path in files:
        read_yaml(path, path.name, tight)


def test_durations_and_times_are_bounded() -> None:
    assert parse_duration("36500d") == scalars.MAX_DURATION_S
    for text in ("36501d", "9" * 400 + "d", "1" * 5000 + "s"):
        with pytest.raises(ValueError, match=r"longer than the limit of 36500d \(100 years\)"):
            parse_duration(text)
    text = DEMO.read_text() + "timeline:\n  - {at: '+" + "9" * 400 + "d', probe: true}\n"
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(text, "t.yaml")
    assert "timeline[0].at" in str(err.value) and "longer than the limit" in str(err.value)


# --- data: paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["data:../../../../etc/shadow", "data:..", "data:a/../../b", "data:/etc/shadow", "data:\\x"],
)
def test_data_paths_leaving_the_data_folder_are_refused(raw: str, tmp_path: Path) -> None:
    assert data_path_problem(raw) is not None
    with pytest.raises(ValueError, match="data folder"):
        resolve_data_path(raw, tmp_path / "s.yaml")


@pytest.mark.parametrize("raw", ["data:a.txt", "data:a/../b.txt", "data:./x/y.txt", "lists/a"])
def test_data_paths_inside_are_kept(raw: str) -> None:
    assert data_path_problem(raw) is None


def test_own_paths_outside_the_scenario_folder_are_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "lists" / "mine.txt"
    own.parent.mkdir()
    own.write_text("18.196.0.0/15\n")
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "beside.txt").write_text("18.196.0.0/15\n")
    scenario = folder / "s.yaml"
    assert outside_note("beside.txt", scenario) is None
    assert outside_note("data:x.txt", scenario) is None
    assert outside_note(str(own), scenario) == f"reads {own}, an absolute path of your own"
    assert outside_note("../lists/mine.txt", scenario) == (
        f"reads {own}, outside the scenario's folder ({folder})"
    )
    text = DEMO.read_text().replace(
        "  - inline: [18.196.0.0/15]",
        f"  - file: {own}\n  - file: beside.txt\n  - file: ../lists/mine.txt",
    )
    scenario.write_text(text)
    assert cli.main(["validate", str(scenario)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{scenario}: ok",
        f"{scenario}: note: registry[1].file: reads {own}, an absolute path of your own",
        f"{scenario}: note: registry[3].file: reads {own}, outside the scenario's folder "
        f"({folder})",
    ]


# --- addresses no lab host can have ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("127.0.0.1", "127.0.0.0/8, loopback"),
        ("::1", "::1/128, loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::fb", "multicast"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("0.1.2.3", "'this network'"),
        ("255.255.255.255", "broadcast"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("10.10.0.11", "the lab's own subscriber networks"),
        ("100.64.0.2", "the lab's own transit network"),
    ],
)
def test_special_and_lab_addresses_are_refused(value: str, fragment: str) -> None:
    problem = lab_address_problem(ipaddress.ip_address(value))
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("value", ["77.88.8.8", "100.64.4.1", "2a00:1450::1", "11.0.0.1"])
def test_public_addresses_are_usable(value: str) -> None:
    assert lab_address_problem(ipaddress.ip_address(value)) is None


def test_cloud_prefixes_overlapping_special_ranges_are_refused() -> None:
    assert "overlaps 10.0.0.0/8" in str(lab_address_problem(ipaddress.ip_network("8.0.0.0/6")))
    assert lab_address_problem(ipaddress.ip_network("0.0.0.0/0")) is not None
    assert lab_address_problem(ipaddress.ip_network("18.196.0.0/15")) is None


def test_lab_ranges_cover_every_address_the_topologies_assign() -> None:
    from tspulab.topologies import multi_isp

    assigned = [
        multi_isp.EXCHANGE_NET,
        ipaddress.ip_network(multi_isp.DNS_EXCHANGE_IP),
        *(multi_isp.isp_net(i) for i in (1, 2, 20)),
        *(ipaddress.ip_network(multi_isp.router_exchange_ip(i)) for i in (1, 20)),
        *(ipaddress.ip_network(multi_isp.cloud_exchange_ip(j)) for j in (0, 200)),
    ]
    ranges = [net for net, _ in scalars.LAB_RANGES]
    for net in assigned:
        assert any(net.subnet_of(r) for r in ranges if r.version == net.version), net


def test_loopback_dns_through_validate(capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "dns_loopback.yaml"
    assert cli.main(["validate", str(path)]) == 1
    assert (
        f"{path}:17:3: dns.address: 127.0.0.1 is in 127.0.0.0/8, loopback: it never leaves the "
        "host; a lab host needs a public unicast address"
    ) in capsys.readouterr().err


# --- scenario files cannot run commands -----------------------------------------------------


SHELL_SAFE = re.compile(r"[A-Za-z0-9._:/ -]*")
"""Addresses, prefixes, names and the topology's own fixed words ('via 100.64.0.1'): no shell
metacharacter (; & | $ ` ' " ( ) < > # newline)."""
HOSTILE = "x; touch /tmp/pwned #"


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _strings(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from _strings(dataclasses.asdict(value))


def test_no_shell_in_the_code_a_scenario_reaches() -> None:
    """No shell=True, os.system or os.popen anywhere a scenario's values go (Mininet's node.cmd
    is a shell: what reaches it is checked by the next test)."""
    banned = ("shell=True", "os.system(", "os.popen(", "getoutput(", "getstatusoutput(")
    for folder in ("tspulab", "controllers", "topologies"):
        for path in (REPO / folder).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            for word in banned:
                assert word not in source, f"{path.relative_to(REPO)} uses {word}"
            # `sh -c` only with every interpolated word quoted, where scenario values go (the
            # strategies bench runs commands of its own making, not a scenario's).
            scenario_side = path.parent.name in ("lab", "scenario", "controllers", "topologies")
            if scenario_side and '"sh", "-c"' in source:
                assert "shlex.quote" in source, path


def test_scenario_values_reach_mininet_only_as_addresses_and_names(tmp_path: Path) -> None:
    """Every string of the topology (node parameters that Node.config puts into `ip route ...`
    shell lines, interface names, switch names) and of the lab plan is an address, a prefix or a
    name: a scenario's free text (description, labels, expectation names, decisions) never gets
    there, and the values that do are validated types."""
    from mininet.topo import Topo

    from tspulab.scenario.build import plan_lab
    from tspulab.topologies.multi_isp import MultiIspTopo

    text = (
        DEMO.read_text()
        .replace("description: ", f"description: '{HOSTILE}' #")
        .replace("    decisions:", "    decisions_unused:")
    )
    text += f"timeline:\n  - {{at: '+1h', label: '{HOSTILE}', probe: true}}\n"
    text += f"expect:\n  - {{service: viber, state: reachable, name: '{HOSTILE}'}}\n"
    scenario = load_scenario_text(text, DEMO)
    assert scenario.description.startswith(HOSTILE)
    plan = plan_lab(scenario)
    topo: Topo = MultiIspTopo(spec=plan.topology)
    found = [*_strings(plan.topology), *_strings(plan.cloud_hosts), *_strings(plan.host_of)]
    for node in topo.nodes():
        found += [node, *_strings(topo.nodeInfo(node))]
    for a, b, info in topo.links(withInfo=True):
        found += [a, b, *_strings(info)]
    for value in found:
        assert SHELL_SAFE.fullmatch(value), value
    # Names and domains that do reach files (nginx, dnsmasq) are validated: no shell words.
    for value in [*_strings(plan.sites), *_strings(plan.dns_records)]:
        assert SHELL_SAFE.fullmatch(value), value


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("address: 77.88.8.8", f"address: '77.88.8.8; {HOSTILE}'"),
        ("prefixes: [18.196.0.0/15]", f"prefixes: ['18.196.0.0/15 {HOSTILE}']"),
        ("name: aws-fra", "name: 'aws;reboot'"),
        ("domains: [www.viber.com]", "domains: ['www.viber.com;reboot']"),
        ("name: demo", "name: '$(reboot)'"),
    ],
)
def test_shell_words_in_values_that_reach_mininet_are_refused(old: str, new: str) -> None:
    text = DEMO.read_text()
    assert old in text
    with pytest.raises(ScenarioError):
        load_scenario_text(text.replace(old, new, 1), DEMO)


# --- validation time stays linear in the file ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(14, 26)),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=10),
)
def test_prefix_index_agrees_with_the_pairwise_scan(
    nets: list[tuple[int, int, int]], probes: list[tuple[int, int]]
) -> None:
    prefixes = [
        ipaddress.ip_network(f"11.{a}.{b}.0/{length}", strict=False) for a, b, length in nets
    ]
    index = PrefixIndex((p, n) for n, p in enumerate(prefixes))
    for a, b in probes:
        address = ipaddress.ip_address(f"11.{a}.{b}.9")
        assert sorted(index.holding(address)) == [n for n, p in enumerate(prefixes) if address in p]
    for net in prefixes:
        assert sorted(index.overlapping(net)) == [
            n for n, p in enumerate(prefixes) if p.overlaps(net)
        ]


def test_many_prefixes_and_services_validate_in_seconds() -> None:
    """3,000 prefixes in 8 clouds and 1,500 services outside a cloud of 1,500 prefixes: the
    pairwise scans (overlap, containment, messages listing every prefix) took 17-24 s here; the
    indexed checks and shortened lists take 2-7 s (mostly ruamel's parser)."""
    base = DEMO.read_text()
    clouds = "".join(
        f"  - name: c{c}\n    prefixes: ["
        + ", ".join(f"{11 + c}.{i // 256}.{i % 256}.0/24" for i in range(375))
        + "]\n"
        for c in range(8)
    )
    began = time.perf_counter()
    load_scenario_text(base.replace("clouds:\n", "clouds:\n" + clouds, 1), DEMO)
    overlap_s = time.perf_counter() - began
    big = (
        "  - name: big\n    prefixes: ["
        + ", ".join(f"11.{i // 256}.{i % 256}.0/24" for i in range(1500))
        + "]\n"
    )
    services = "".join(
        f"  - {{name: s{i}, role: innocent, domains: [s{i}.example.com], cloud: big, "
        f"address: 12.0.{i // 256}.{i % 256}}}\n"
        for i in range(1500)
    )
    text = base.replace("clouds:\n", "clouds:\n" + big, 1).replace(
        "services:\n", "services:\n" + services, 1
    )
    began = time.perf_counter()
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(text, DEMO)
    outside_s = time.perf_counter() - began
    assert len(err.value.errors) == 1500
    first = err.value.errors[0].message
    assert first.endswith(", ... (1500 in all))") and len(first) < 300, first
    assert overlap_s < 15 and outside_s < 30, (overlap_s, outside_s)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "a"]),
            st.lists(st.tuples(st.integers(0, 3), st.integers(8, 12)), min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_cloud_overlaps_reports_what_the_pairwise_scan_did(
    raw: list[tuple[str, list[tuple[int, int]]]],
) -> None:
    clouds = [
        (
            i,
            Cloud.model_validate(
                {
                    "name": name,
                    "prefixes": [
                        str(ipaddress.ip_network(f"11.{a * 64}.0.0/{length}", strict=False))
                        for a, length in nets
                    ],
                }
            ),
        )
        for i, (name, nets) in enumerate(raw)
    ]
    pairwise = []  # the scan schema._check_clouds ran before the index
    seen: list[tuple[int, Cloud, object]] = []
    for i, cloud in clouds:
        for k, prefix in enumerate(cloud.prefixes):
            for j, other, theirs in seen:
                if other.name != cloud.name and prefix.overlaps(theirs):  # type: ignore[arg-type]
                    pairwise.append((i, k, prefix, j, theirs))
        seen.extend((i, cloud, p) for p in cloud.prefixes)
    indexed = [(i, k, p, j, t) for i, _, k, p, j, _, t in cloud_overlaps(clouds)]
    assert indexed == pairwise
