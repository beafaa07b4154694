"""One method server, clients in two subscriber hosts at once (as every subscriber of a campaign
probes through the same method): both reach the target, each through its own client."""

from __future__ import annotations

import pytest

from tests.emulation.methods.cases import BY_ID, method_for
from tests.emulation.methods.conftest import World
from tspulab.methods.base import Access
from tspulab.methods.probe import probe_through


@pytest.mark.parametrize(
    "case_id", ["openvpn-udp", "wireguard", "ss-chacha20", "tor-obfs4", "ipsec"]
)
def test_two_subscribers_through_one_server(world: World, case_id: str) -> None:
    method = method_for(world, BY_ID[case_id], f"two-{case_id}", clients=2)
    try:
        method.start_server(world.srv)
        accesses = [(node, method.start_client(node)) for node in (world.sub, world.sub2)]
        for node, access in accesses:
            direct = probe_through(node, Access(), world.url, method="direct", timeout_s=2)
            assert not direct.ok, f"{node.name} reaches the target without the method"
            page = probe_through(
                node, access, world.url, method=case_id, timeout_s=15, ca=world.ca.ca_path
            )
            assert page.ok, f"{case_id} from {node.name}: {page.outcome} {page.stderr}"
    finally:
        method.stop()
