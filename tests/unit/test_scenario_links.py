"""The `links:` section: defaults per class, overrides per class, ISP and cloud, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.scenario.links import DEFAULTS, Links, Shape, parse_links
from tspulab.scenario.schema import load_scenario_text, scenario_json_schema

REPO = Path(__file__).resolve().parents[2]
DEMO = (REPO / "scenarios" / "demo.yaml").read_text(encoding="utf-8")


def test_no_links_section_means_no_delays() -> None:
    assert load_scenario_text(DEMO).links is None


def test_empty_links_section_takes_the_defaults_and_requires_netem() -> None:
    links = load_scenario_text(DEMO + "\nlinks: {}\n").links
    assert links is not None and links.required
    assert links.access_of("isp") == "fibre"
    assert links.class_shape("foreign") == DEFAULTS["foreign"]
    # A foreign cloud is 40-60 ms from Moscow, a domestic one a few ms.
    assert 40 <= links.cloud_shape("aws-fra", domestic=False).delay_ms <= 60
    assert links.cloud_shape("yandex", domestic=True).delay_ms < 10
    assert DEFAULTS["mobile"].delay_ms > DEFAULTS["dsl"].delay_ms > DEFAULTS["fibre"].delay_ms


def test_overrides_per_class_isp_and_cloud_keep_unset_fields() -> None:
    text = DEMO + (
        "\nlinks:\n  required: false\n  isps: {isp: mobile}\n"
        "  classes:\n    mobile: {loss: 0.5%}\n    foreign: {delay: 45ms}\n"
        "  clouds:\n    gcp: {delay: 1s, jitter: 300us}\n"
    )
    links = load_scenario_text(text).links
    assert links is not None and not links.required
    mobile = links.class_shape(links.access_of("isp"))
    assert mobile == Shape(DEFAULTS["mobile"].delay_ms, DEFAULTS["mobile"].jitter_ms, 0.5)
    assert links.cloud_shape("aws-fra", domestic=False).delay_ms == 45
    assert links.cloud_shape("gcp", domestic=False) == Shape(1000.0, 0.3, 0.0)
    rtt = links.rtt_ms("isp", "aws-fra", domestic=False)
    assert rtt == DEFAULTS["mobile"].delay_ms + DEFAULTS["exchange"].delay_ms + 45


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"classes": {"fibre": {"delay": "5"}}}, "expected a time such as '25ms'"),
        ({"classes": {"fibre": {"delay": "11s"}}}, "is more than 10 s"),
        ({"classes": {"fibre": {"loss": 1}}}, "write '1%'"),
        ({"classes": {"fibre": {"loss": "-1%"}}}, "expected a percentage"),
        ({"required": "yes"}, "bool"),
    ],
)
def test_bad_values_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_links(raw)


def test_json_schema_has_links() -> None:
    schema = scenario_json_schema()
    assert "links" in schema["properties"]
    assert set(schema["$defs"]["Links"]["properties"]) == set(Links.model_fields)
