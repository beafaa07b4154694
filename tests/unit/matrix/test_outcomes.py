"""The §6 outcomes file: the shipped one loads, and every bad value is reported at its line."""

from __future__ import annotations

import pytest

from tspulab.matrix.catalogue import DEFAULT_METHODS, DEFAULT_PROFILES
from tspulab.matrix.outcomes import OutcomesError, load_outcomes, load_outcomes_text

GOOD = """version: 1
outcomes:
  - id: vpn
    technique: Plain WireGuard / OpenVPN
    section: "§6"
    result: fails
    when: since 2023-08
    source: N4P-#274
    confidence: R
    methods: [kind:openvpn, wireguard]
    profiles: [vpn-protocols-2023]
    why: the profile models it
"""


def test_the_shipped_outcomes_load_and_speak_about_the_default_matrix() -> None:
    table = load_outcomes()
    assert table.file.endswith("data/circumvention-outcomes.yaml")
    covered = {
        (m, p) for m in DEFAULT_METHODS for p in DEFAULT_PROFILES if table.lookup(m, p) is not None
    }
    # Every record cites §6 and a source; most cells of the default matrix have one.
    assert all(o.section == "§6" and o.source for o in table.outcomes)
    assert len(covered) >= 40
    assert table.lookup("wireguard", "vpn-protocols-2023").result == "fails"  # type: ignore[union-attr]
    assert table.lookup("trojan", "tspu-2022").result == "works"  # type: ignore[union-attr]
    assert table.lookup("direct", "tspu-2022") is None


def test_kind_and_name_entries() -> None:
    table = load_outcomes_text(GOOD, "o.yaml")
    assert table.lookup("ovpn-tcp-tls-crypt", "vpn-protocols-2023") is not None
    assert table.lookup("wireguard", "vpn-protocols-2023") is not None
    assert table.lookup("wireguard", "tspu-2022") is None
    assert table.lookup("ss-chacha20", "vpn-protocols-2023") is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("result: fails", "result: blocked", "o.yaml:6:5: outcomes[0].result: "),
        (
            "[kind:openvpn, wireguard]",
            "[kind:openvpn, wiregard]",
            "o.yaml:10:29: outcomes[0].methods[1]: unknown method 'wiregard'; did you mean 'wireguard'?",
        ),
        (
            "[kind:openvpn, wireguard]",
            "[kind:openvpm]",
            "o.yaml:10:15: outcomes[0].methods[0]: unknown method 'kind:openvpm'",
        ),
        (
            "[vpn-protocols-2023]",
            "[vpn-protocol-2023]",
            "o.yaml:11:16: outcomes[0].profiles[0]: unknown profile 'vpn-protocol-2023'; did you mean 'vpn-protocols-2023'?",
        ),
        ('section: "§6"', "section: six", "o.yaml:5:5: outcomes[0].section: "),
        ("confidence: R", "confidence: X", "o.yaml:9:5: outcomes[0].confidence: "),
        ("    why: the profile models it\n", "", "o.yaml:3:5: outcomes[0].why: "),
        (
            "    source: N4P-#274\n",
            "    source: N4P-#274\n    sorce: x\n",
            "o.yaml:9:5: outcomes[0].sorce: ",
        ),
        ("version: 1", "version: 2", "o.yaml:1:1: version: "),
    ],
)
def test_bad_values_name_file_line_and_field(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(OutcomesError) as err:
        load_outcomes_text(GOOD.replace(old, new), "o.yaml")
    assert message in str(err.value), str(err.value)


def test_two_records_that_contradict_each_other_on_a_cell() -> None:
    second = (
        GOOD.split("outcomes:\n")[1]
        .replace("id: vpn", "id: vpn-2")
        .replace("result: fails", "result: works")
        .replace("[kind:openvpn, wireguard]", "[ovpn-udp]")
    )
    with pytest.raises(OutcomesError) as err:
        load_outcomes_text(GOOD + second, "o.yaml")
    assert (
        "o.yaml:16:5: outcomes[1].result: ovpn-udp under vpn-protocols-2023: 'works' here, 'fails' in outcome 'vpn'"
        in str(err.value)
    )


def test_a_duplicate_id() -> None:
    second = GOOD.split("outcomes:\n")[1].replace("[vpn-protocols-2023]", "[tspu-2022]")
    with pytest.raises(OutcomesError, match=r"o.yaml:13:5: outcomes\[1\].id: id 'vpn' used twice"):
        load_outcomes_text(GOOD + second, "o.yaml")
