"""The contracts between processes (tspulab.contracts): written and read by the same models, and
a hand-made file with a missing or wrong field is refused with the file and the field named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tspulab.contracts import (
    ContractError,
    ControllerFile,
    EventKind,
    IspMeta,
    RunMeta,
    ServiceMeta,
    TspuSwitchConfig,
)
from tspulab.controllers.config import ControllerConfig

REPO = Path(__file__).resolve().parents[2]


def _controller_file(tmp_path: Path) -> ControllerFile:
    return ControllerFile(
        tspus=[
            TspuSwitchConfig(
                name="rostelecom", dpid=0x201, subscriber_port=1, upstream_port=2,
                subscriber_if="t1-eth1", upstream_if="t1-eth2",
                registry_file=tmp_path / "registry.json", profile="tspu-2022",
                profile_sets={"sni-i": ["twitter.com"]}, subscriber_nets=["10.1.0.0/24"],
                time_scale=0.5, fail_mode="open", bypass_hosts=["10.1.0.12"],
            )
        ],
        events_log=tmp_path / "events.jsonl",
    )  # fmt: skip


def test_controller_file_round_trips_into_the_controllers_config(tmp_path: Path) -> None:
    path = tmp_path / "controller.json"
    written = _controller_file(tmp_path)
    written.write(path)
    assert ControllerFile.read(path) == written
    config = ControllerConfig.load(path)
    [tspu] = config.tspus
    assert (tspu.name, tspu.dpid, tspu.ports.subscriber, tspu.ports.upstream) == (
        "rostelecom",
        0x201,
        1,
        2,
    )
    assert tspu.fail_mode == "open" and tspu.time_scale == 0.5
    assert [str(n) for n in tspu.subscriber_nets] == ["10.1.0.0/24"]
    assert tspu.profile_sets == {"sni-i": ("twitter.com",)}
    assert config.events_log == tmp_path / "events.jsonl"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["tspus"][0].pop("dpid"), r"tspus\[0\]\.dpid: Field required"),
        (lambda d: d["tspus"][0].update(dpid="two"), r"tspus\[0\]\.dpid: Input should be a valid integer"),
        (lambda d: d["tspus"][0].update(fail_mode="maybe"), r"tspus\[0\]\.fail_mode: Input should be 'closed' or 'open'"),
        (lambda d: d["tspus"][0].update(subscriber_prot=1), r"tspus\[0\]\.subscriber_prot: Extra inputs are not permitted"),
        (lambda d: d.pop("tspus"), r"tspus: Field required"),
    ],
)  # fmt: skip
def test_a_hand_made_controller_file_names_the_bad_field(
    tmp_path: Path, change: object, message: str
) -> None:
    path = tmp_path / "controller.json"
    _controller_file(tmp_path).write(path)
    raw = json.loads(path.read_text())
    change(raw)  # type: ignore[operator]
    path.write_text(json.dumps(raw))
    with pytest.raises(ContractError, match=message) as info:
        ControllerConfig.load(path)
    assert str(path) in str(info.value)


def test_not_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "controller.json"
    path.write_text('{"tspus": [\n  oops]}')
    with pytest.raises(ContractError, match=r"controller\.json:2:3: not JSON"):
        ControllerFile.read(path)


def test_run_meta_round_trips(tmp_path: Path) -> None:
    meta = RunMeta(
        name="demo", scenario="scenarios/demo.yaml", started=1.0, clock_start=None,
        clock_speed=1.0, tspu=True, capture=False,
        isps=[IspMeta(name="isp", profile="rkn-2018-ip", coverage=1.0, update_delay_s=0.0,
                      fail_mode="closed", subscribers=["sub1"], tspu_switch="t1")],
        services=[ServiceMeta(name="viber", role="innocent", users=40, address="18.197.25.40",
                              cloud="aws-fra")],
        circumvention=[], probes={"degraded_below_kbps": 1000.0}, datapath="userspace (netdev)",
        netem=False, cloud_hosts={"aws-fra": "cl1"},
    )  # fmt: skip
    meta.write(tmp_path / "run.json")
    assert RunMeta.read(tmp_path / "run.json") == meta


def test_every_event_the_controller_writes_is_a_named_kind() -> None:
    """Event names are the contract's EventKind members, not strings spread over modules: every
    literal name the controller code writes must be one of them."""
    written: set[str] = set()
    for path in (REPO / "controllers").glob("*.py"):
        text = path.read_text()
        written.update(
            re.findall(
                r'(?:event_log\.write|self\.log|self\._log|events\.write)\(\s*"([a-z-]+)"', text
            )
        )
    assert written, "found no event writes: the pattern no longer matches the code"
    assert written <= {k.value for k in EventKind}, written - {k.value for k in EventKind}
