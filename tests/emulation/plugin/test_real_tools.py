"""The plugin's fixtures and assertions on one lab (tspu-2022) with real tools in a cloud.

Shadowsocks and SSH (tspulab.methods adapters) and a user's own TUN tool (`kind: custom`:
wireguard-go and wg driven by shell commands) carry a subscriber to a target whose name is in the
registry: direct it times out (SNI-IV), through each tool it arrives; a user's plain SOCKS5 server
(microsocks) does not hide the inner ClientHello and is dropped by the same rule. Mid-test, the registry gains the Shadowsocks server's
address (that tool stops, SSH goes on) and the profile changes; both are put back for the next
test. The user's server is then killed: the next probe through it raises ToolDied naming the
scenario line and carrying the server's log, instead of passing for a censorship result.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from tspulab.dpi.yamlload import ScenarioError
from tspulab.pytest_plugin import Lab, Subscriber, Tool, ToolDied
from tspulab.scenario.schema import load_scenario

if not any(e.value == "tspulab.pytest_plugin" for e in entry_points(group="pytest11")):
    pytest.skip("the tspulab plugin is not installed (pip install -e .)", allow_module_level=True)

pytestmark = pytest.mark.tspulab_scenario("real_tools.yaml")


@pytest.fixture(scope="module")
def tspulab_runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def test_real_tools_get_through_what_is_blocked(
    tspulab_lab: Lab, tspulab_subscriber: Subscriber
) -> None:
    sub = tspulab_subscriber
    assert sub.is_blocked("blocked", how="timeout")
    assert not sub.is_blocked("blocked", how="reset")  # SNI-IV drops; it does not reset
    assert sub.is_blocked("twitter", how="reset")  # SNI-I (tspu-2022's set sni-i): a RST
    assert not sub.is_blocked("twitter", how="timeout")
    assert tspulab_lab.detected_by("sni-i", target="twitter")
    assert tspulab_lab.detected_by("sni-iv", target="blocked")
    for via in ("ss", "ssh"):
        assert sub.gets_through("blocked", via=via)
    assert not tspulab_lab.detected_by("sni-iv", via="ss")
    # A plain SOCKS5 proxy hides nothing: the TSPU reads the inner ClientHello on its way to
    # the proxy and drops that flow; an innocent site goes through it.
    assert sub.is_blocked("blocked", via="mine", how="timeout")
    assert tspulab_lab.detected_by("sni-iv", via="mine")
    assert sub.gets_through("hoster", via="mine")
    assert sub.gets_through("blocked", via="wgtun")  # through the user's TUN
    assert sub.goodput("hoster", via="ss") > 10e6
    assert sub.run("ip -4 -br addr").output.count("10.") >= 1


def test_registry_change_mid_test(tspulab_lab: Lab, tspulab_subscriber: Subscriber) -> None:
    tspulab_lab.block("88.99.1.10")  # the Shadowsocks server's address
    assert tspulab_subscriber.is_blocked("blocked", via="ss", how="timeout")
    assert tspulab_subscriber.gets_through("blocked", via="ssh")
    # Address drops are switch rules (no controller verdict): detected_by sees DPI verdicts only
    assert not tspulab_lab.detected_by("ip", via="ss")


def test_profile_change_mid_test(tspulab_lab: Lab, tspulab_subscriber: Subscriber) -> None:
    assert tspulab_subscriber.gets_through("blocked", via="ss")  # the registry was put back
    tspulab_lab.set_profile("rkn-2018-ip")  # addresses only: a listed name passes
    assert tspulab_subscriber.gets_through("blocked")


def test_the_profile_was_put_back(tspulab_subscriber: Subscriber) -> None:
    assert tspulab_subscriber.is_blocked("blocked")


def _kill_server(live: Any, name: str) -> int:
    started = live.methods.adapters[name].servers[0]
    started.proc.kill()
    return int(started.proc.wait(timeout=10))


def test_a_tool_that_dies_is_an_error_not_a_block(
    tspulab_lab: Lab, tspulab_subscriber: Subscriber, tspulab_tool: Tool
) -> None:
    assert tspulab_tool.name == "mine" and tspulab_tool.alive()
    assert tspulab_lab.call(_kill_server, "mine") == -9
    assert not tspulab_tool.alive()
    with pytest.raises(ToolDied) as err:
        tspulab_subscriber.probe("hoster", via="mine")
    text = (Path(__file__).parent / "real_tools.yaml").read_text().splitlines()
    line = text.index("  - name: mine") + 1
    assert re.search(rf"circumvention 'mine' \(custom, real_tools.yaml:{line}\): server on \S+ "
                     r"exited \(status -9\)", str(err.value))  # fmt: skip


def _bad_scenario(live: Any) -> None:
    bad = live.run_dir / "bad.yaml"
    bad.write_text("name: bad\nservices:\n  - {name: x, role: target, address: nowhere}\n")
    load_scenario(bad)


def test_a_scenario_error_in_the_lab_comes_back_as_itself(tspulab_lab: Lab) -> None:
    with pytest.raises(ScenarioError) as err:
        tspulab_lab.call(_bad_scenario)
    assert re.search(r"bad\.yaml:3:\d+: services\[0\]\.address: 'nowhere' is not", str(err.value))
    assert any(e.field == "services[0].address" for e in err.value.errors)


def test_a_failure_shows_the_lab(tspulab_lab: Lab, tspulab_subscriber: Subscriber) -> None:
    tspulab_subscriber.probe("blocked")
    text = tspulab_lab.failure_text()
    assert f"run directory: {tspulab_lab.run_dir}" in text
    assert "capture: " in text and "capture-isp.pcap" in text
    assert "sni=blocked.example.org drop rule=sni-iv" in text
