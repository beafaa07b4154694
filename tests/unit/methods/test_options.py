"""The per-kind `options:` of circumvention methods in the scenario language.

Every option of every kind has an invalid scenario file (tests/scenarios/invalid/
campaign_method_<kind>_<option>.yaml) whose expected file:line:field error the schema test
checks; this module checks that none is missing, the defaults, and the registry of adapters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tspulab.methods import ADAPTERS
from tspulab.methods.options import (
    DEFAULT_PORTS,
    KIND_OPTIONS,
    METHOD_KINDS,
    OpenVpnOptions,
    ShadowsocksOptions,
    default_options,
)
from tspulab.scenario.campaign import Circumvention

INVALID = Path(__file__).resolve().parents[2] / "scenarios" / "invalid"


@pytest.mark.parametrize(
    ("kind", "option"),
    [(k, f) for k, model in KIND_OPTIONS.items() for f in model.model_fields],
)
def test_every_option_has_an_invalid_file(kind: str, option: str) -> None:
    path = INVALID / f"campaign_method_{kind.replace('-', '_')}_{option}.yaml"
    assert path.exists(), f"no bad-value test for {kind} option {option}: {path.name}"
    assert path.read_text().startswith("# expect: "), path.name
    assert f".options.{option}" in path.read_text().splitlines()[0]


def test_every_kind_but_direct_has_an_adapter_and_a_port() -> None:
    assert set(METHOD_KINDS) - {"direct"} == set(ADAPTERS) == set(DEFAULT_PORTS)


def test_adapter_classes_import_and_name_their_kind() -> None:
    from tspulab.methods import adapter_class

    for kind in ADAPTERS:
        assert adapter_class(kind).kind == kind


def test_defaults_fill_options_and_port() -> None:
    m = Circumvention.model_validate(
        {"name": "vpn", "kind": "openvpn", "cloud": "c", "address": "88.99.1.10"}
    )
    assert m.port == 1194
    assert isinstance(m.options, OpenVpnOptions)
    assert (m.options.proto, m.options.tls_crypt, m.options.cipher) == ("udp", False, "AES-256-GCM")
    assert [str(r) for r in m.options.routes] == ["0.0.0.0/1", "128.0.0.0/1"]
    assert default_options("direct").model_dump() == {}


def test_options_are_checked_against_the_kind() -> None:
    m = Circumvention.model_validate(
        {
            "name": "ss",
            "kind": "shadowsocks",
            "cloud": "c",
            "address": "88.99.1.10",
            "options": {"cipher": "2022-blake3-aes-256-gcm"},
        }
    )
    assert isinstance(m.options, ShadowsocksOptions)
    assert m.options.cipher == "2022-blake3-aes-256-gcm"
    # An option of another kind is unknown here, named with the kind's own options.
    with pytest.raises(ValueError, match="unknown shadowsocks option 'proto'"):
        Circumvention.model_validate(
            {"name": "ss", "kind": "shadowsocks", "options": {"proto": "udp"}}
        )


def test_options_of_a_bad_kind_are_not_reported_twice() -> None:
    with pytest.raises(ValueError) as info:
        Circumvention.model_validate({"name": "x", "kind": "pigeon", "options": {"a": 1}})
    assert [e["loc"] for e in info.value.errors()] == [("kind",)]  # type: ignore[attr-defined]
