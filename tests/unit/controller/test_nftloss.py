"""The nftables loss worker: work is queued (never run on the caller's thread), in order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence

import pytest

from tspulab.controllers.enforcement import LossAdd, LossRemove, LossRule
from tspulab.controllers.nftloss import NftError, NftLoss, rule_text
from tspulab.controllers.pipeline import FlowEndpoints

EP = FlowEndpoints(6, "10.0.0.2", 40000, "93.184.216.34", 443)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.threads: set[str] = set()
        self.handle = 10
        self.fail_on: str | None = None

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(tuple(args))
        self.threads.add(threading.current_thread().name)
        if self.fail_on and self.fail_on in args:
            raise NftError(f"nft {' '.join(args)}: refused")
        if "--echo" in args:
            self.handle += 1
            return f"add rule netdev t up ... # handle {self.handle}\n"
        return ""


def test_rules_are_added_and_removed_on_the_worker_thread() -> None:
    run = Recorder()
    logged: list[str] = []
    nft = NftLoss("t", "sub0", "up0", runner=run, log=lambda e, **f: logged.append(e))
    nft.submit(LossAdd(LossRule(EP, "up", 0.3)))
    nft.submit(LossAdd(LossRule(EP, "down", 0.3)))
    nft.submit(LossRemove(EP))
    nft.wait_idle()
    assert run.threads == {"tspulab-nft"}
    verbs = [c[:2] for c in run.calls]
    assert verbs[:3] == [("add", "table"), ("add", "chain"), ("add", "chain")]
    assert [c for c in run.calls if c[0] == "delete"] == [
        ("delete", "rule", "netdev", "t", "up", "handle", "11"),
        ("delete", "rule", "netdev", "t", "down", "handle", "12"),
    ]
    nft.close()
    assert run.calls[-1] == ("delete", "table", "netdev", "t")
    assert logged == ["loss-on", "loss-on"]  # each rule, once it is in


def test_a_failing_rule_is_logged_and_the_worker_goes_on() -> None:
    run = Recorder()
    run.fail_on = "--echo"
    logged: list[str] = []
    nft = NftLoss("t", "sub0", "up0", runner=run, log=lambda e, **f: logged.append(e))
    nft.submit(LossAdd(LossRule(EP, "up", 0.3)))
    nft.wait_idle()
    run.fail_on = None
    nft.submit(LossAdd(LossRule(EP, "down", 0.5)))
    nft.wait_idle()
    assert logged == ["nft-error", "loss-on"] and run.calls[-1][0] == "--echo"


def test_rule_text_names_one_direction_of_one_flow() -> None:
    assert rule_text(LossRule(EP, "down", 0.25)) == (
        "ip saddr 93.184.216.34 ip daddr 10.0.0.2 tcp sport 443 tcp dport 40000 "
        "numgen random mod 1000000 < 250000 counter drop"
    )


LIVE = r"""
import json, subprocess, sys
from tspulab.controllers.enforcement import LossAdd, LossRemove, LossRule
from tspulab.controllers.nftloss import NftLoss
from tspulab.controllers.pipeline import FlowEndpoints
subprocess.run("ip link add up0 type veth peer name sub0 && ip link set up0 up && "
               "ip link set sub0 up", shell=True, check=True)
logged = []
nft = NftLoss("tspulab_t", "sub0", "up0", log=lambda e, **f: logged.append([e, f]))
ep = FlowEndpoints(6, "10.0.0.2", 40000, "10.9.0.3", 443)
nft.submit(LossAdd(LossRule(ep, "down", 0.1)))
nft.wait_idle()
listed = subprocess.run(["nft", "list", "table", "netdev", "tspulab_t"], capture_output=True,
                        text=True).stdout
nft.submit(LossRemove(ep))
nft.wait_idle()
after = subprocess.run(["nft", "list", "table", "netdev", "tspulab_t"], capture_output=True,
                       text=True).stdout
nft.close()
gone = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
print(json.dumps({"listed": listed, "after": after, "gone": gone, "logged": logged}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_libnftables_puts_the_rule_in_the_kernel_and_takes_it_out() -> None:
    """The real binding, in a network namespace of its own: chains on both ports, the rule
    with its handle, removed by that handle, the table deleted at close."""
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", LIVE],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout)
    ((event, fields),) = got["logged"]
    assert event == "loss-on" and fields["direction"] == "down" and fields["delay_ms"] < 5000
    for port in ("sub0", "up0"):
        assert f'hook egress device "{port}"' in got["listed"]
    assert "ip saddr 10.9.0.3 ip daddr 10.0.0.2 tcp sport 443 tcp dport 40000" in got["listed"]
    assert "numgen random mod 1000000 < 100000" in got["listed"]
    assert "numgen" not in got["after"] and "tspulab_t" not in got["gone"]


def test_chains_that_cannot_hook_yet_are_made_when_the_switch_comes_up() -> None:
    """The controller may start before the switch's ports exist (seen in the VM guest): the
    start is deferred and logged, and `prepare` (on switch-up) makes them before any flow."""
    run = Recorder()
    run.fail_on = "chain"
    logged: list[str] = []
    nft = NftLoss("t", "sub0", "up0", runner=run, log=lambda e, **f: logged.append(e))
    nft.wait_idle()
    run.fail_on = None
    nft.prepare()
    nft.wait_idle()
    assert [c[:2] for c in run.calls[-2:]] == [("add", "chain"), ("add", "chain")]
    nft.submit(LossAdd(LossRule(EP, "up", 0.3)))
    nft.wait_idle()
    assert run.calls[-1][0] == "--echo" and logged == ["nft-deferred", "loss-on"]
    nft.close()
