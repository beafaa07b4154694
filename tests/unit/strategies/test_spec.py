"""The spec language: what parses, what it means, and the error each bad input gets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tspulab.strategies.catalogue import CATALOGUE, Position
from tspulab.strategies.spec import StrategySpecError, load_yaml, parse


def test_the_issue_example_parses_into_two_stream_steps() -> None:
    s = parse("split:sni+tlsrec:1")
    assert [step.name for step in s.steps] == ["split", "tlsrec"]
    assert s.steps[0].position() == Position("sni")
    assert s.steps[1].position() == Position("abs", 1)
    assert s.layers() == {"stream"}
    assert s.text() == "split:at=sni+tlsrec:at=1"


def test_defaults_flags_and_named_parameters() -> None:
    fake = parse("fake:ttl=3:badsum:data=random:len=150").steps[0]
    assert (fake.num("ttl"), fake["badsum"], fake["badseq"], fake.word("data")) == (
        3,
        True,
        False,
        "random",
    )
    assert (
        fake.num("len") == 150
        and fake.num("repeats") == 1
        and fake.word("sni") == "www.example.com"
    )
    assert parse("ipfrag:sni-2:order=reverse:overlap=16").steps[0].position() == Position("sni", -2)
    assert parse("srvwin").steps[0].num("size") == 40
    assert parse("fake:ttl=0x10").steps[0].num("ttl") == 16
    assert parse("none").steps == () and parse("").text() == "none"


def test_layers_of_a_mixed_combination() -> None:
    s = parse("split:sni+fake:md5+srvwin:20+sni-dot")
    assert s.layers() == {"stream", "packet", "server", "client"}
    assert [x.name for x in s.of_layer("packet")] == ["fake"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("splt:sni", "'splt:sni' at column 1: unknown strategy 'splt'; did you mean 'split'?"),
        ("split:sni+tlsrec:x", "at column 18: tlsrec.at: 'x' is not a position"),
        ("split:0", "at column 7: split.at: 0 is not a position: it must be >= 1"),
        ("fake", "at column 1: fake: a fake needs a way to stay away from the server"),
        ("fake:ttl=0", "at column 6: fake.ttl: 0 is below the minimum 1"),
        ("fake:ttl=2:lenn=5", "at column 12: fake: unknown parameter 'lenn'; did you mean 'len'?"),
        ("fake:ttl=2:data=hi", "fake.data: 'hi' is not one of hello, random, zero"),
        ("fake:ttl=2:sni=a b", "fake.sni: 'a b' is not a host name"),
        ("ipfrag:overlap=5", "at column 8: ipfrag.overlap: 5 is not a multiple of 8"),
        ("tlsrec:1:2:3", "at column 12: tlsrec: too many arguments ('3'); it takes at, off"),
        ("split::1", "at column 7: split: empty argument"),
        ("split:sni++tlsrec", "empty step"),
        ("split:1:at=2", "split.at: given twice"),
        ("fake:ttl=2:badsum:badsum", "fake.badsum: given twice"),
        ("sni-dot+sni-dot", "'sni-dot' given twice; it cannot be repeated"),
        ("split:sni+udpfake", "mixes TCP-only and UDP-only strategies"),
        ("srvwin:size=70000", "srvwin.size: 70000 is above the maximum 65535"),
        ("fake:ttl=2:badsum=maybe", "fake.badsum: 'maybe' is not a flag value"),
    ],
)
def test_bad_specs_name_the_place_the_step_and_the_parameter(spec: str, message: str) -> None:
    with pytest.raises(StrategySpecError) as err:
        parse(spec)
    assert message in str(err.value)


def test_yaml_form_equals_the_string_form() -> None:
    text = "strategy:\n  - split: sni\n  - tlsrec: {at: 1}\n  - fake: {ttl: 2, data: random, len: 120}\n  - sni-dot\n"
    assert load_yaml("s.yaml", text=text) == parse(
        "split:sni+tlsrec:1+fake:ttl=2:data=random:len=120+sni-dot"
    )
    assert load_yaml("s.yaml", text="- split: [sni, 2]\n") == parse("split:sni:2")
    assert load_yaml("s.yaml", text="'split:sni+disorder:1'\n") == parse("split:sni+disorder:1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "strategy:\n  - split: sni\n  - tlsrec: {at: x}\n",
            "s.yaml:3:14: strategy[1].tlsrec.at: 'x' is not a position",
        ),
        (
            "- spilt: 3\n",
            "s.yaml:1:3: strategy[0]: unknown strategy 'spilt'; did you mean 'split'?",
        ),
        ("- fake: {ttl: 2, lenn: 3}\n", "s.yaml:1:18: strategy[0].fake: unknown parameter 'lenn'"),
        ("- fake\n", "s.yaml:1:3: strategy[0].fake: a fake needs a way"),
        ("- [split]\n", "s.yaml:1:3: strategy[0]: expected a name or a one-key mapping"),
        ("strategy: 5\n", "s.yaml:1:1: strategy: expected a list of steps or a string, got int"),
        ("- split: {at: [\n", "s.yaml:2:1: not valid YAML"),
    ],
)
def test_bad_yaml_names_file_line_column_and_field(text: str, message: str) -> None:
    with pytest.raises(StrategySpecError) as err:
        load_yaml("s.yaml", text=text)
    assert message in str(err.value)


def test_a_missing_yaml_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StrategySpecError, match="cannot read"):
        load_yaml(tmp_path / "none.yaml")


_SIMPLE = ["split:sni", "split:7", "disorder:sni", "oob:3", "tlsrec:sni", "tlsrec:2",
           "prefix:alert", "pad:2000", "sni-case:upper", "sni-dot", "fake:ttl=4",
           "fake:md5:data=zero:len=77", "ipfrag:sni:order=reverse", "srvwin:100", "split-handshake"]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_SIMPLE), min_size=1, max_size=4, unique=True))
def test_canonical_text_parses_back_to_the_same_strategy(specs: list[str]) -> None:
    try:
        s = parse("+".join(specs))
    except StrategySpecError:
        return  # e.g. two non-repeatable steps of one name; refusing is the point
    assert parse(s.text()) == s


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="splitnfake:=+0123456789-_ .", max_size=30))
def test_any_text_parses_or_gets_a_spec_error(text: str) -> None:
    try:
        parse(text)
    except StrategySpecError as err:
        assert str(err)


def test_every_strategy_cites_a_source_and_documents_its_parameters() -> None:
    for d in CATALOGUE.values():
        assert d.sources and d.summary and d.layer in ("stream", "packet", "server", "client")
        assert all(p.doc for p in d.params)
