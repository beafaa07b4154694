import pytest

pytestmark = [
    pytest.mark.tspulab_scenario("lab.yaml"),
    pytest.mark.tspulab_profiles("tspu-2022", "tspu-2026-reassembly"),
]


def test_relay_gets_through(tspulab_subscriber):
    assert tspulab_subscriber.is_blocked("blocked", how="timeout")
    assert tspulab_subscriber.gets_through("blocked", via="relay")


def test_split_hello_gets_through(tspulab_subscriber, tspulab_profile, request):
    if tspulab_profile == "tspu-2026-reassembly":  # reassembles TCP first (tspu-behaviour §5.10)
        request.applymarker(pytest.mark.xfail(strict=True, reason="2026 nodes reassemble"))
    assert tspulab_subscriber.gets_through("blocked", via="split")
