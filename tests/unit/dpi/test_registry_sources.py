"""Loaders: crafted bad inputs name file, line and field; real files load with the stated counts."""

from __future__ import annotations

import gzip
import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from tests.datapaths import DATA
from tspulab.dpi.registry import (
    MatchKind,
    Registry,
    RegistryLoadError,
    load_aws_ranges,
    load_cloud_ranges,
    load_inline,
    load_list,
    load_rkn_dump,
)

DUMP_2018 = "rkn-registry/z-i_dump_2018-05-05_partial.cp1251.csv.gz"
DUMP_2016 = "rkn-registry/z-i_dump_2016-06-13.cp1251.csv.gz"
TELEGRAM_DECISIONS = {
    "2-1779/2018": "telegram-2018/stage0_telegram_own_2-1779-2018.txt",
    "27-31-2015/Ид4082-15": "telegram-2018/stage2_cloud_subnets_as_of_2018-05-05_partial.txt",
    "27-31-2018/Ид2971-18": "telegram-2018/stage3_proxies_2971-18_as_of_2018-05-05_partial.txt",
}


def data(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():  # shipped in data/: absent means a broken checkout
        raise AssertionError(f"shipped reference data missing: {path}")
    return path


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# -- plain lists --------------------------------------------------------------------------------
def test_list_with_addresses_prefixes_domains_and_comments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mixed.lst",
        "# header comment\n\n91.108.4.0/22\n149.154.167.99  # web.telegram.org\n"
        "2001:67c:4e8::/48\ntelegram.org\n*.twimg.com\n*t.co*\n",
    )
    reg = load_list(path)
    assert [str(e.network) for e in reg.address_entries()] == [
        "91.108.4.0/22",
        "149.154.167.99/32",
        "2001:67c:4e8::/48",
    ]
    assert reg.address_entries()[1].source == f"{path}:4"
    kinds = {r.name: (r.kind, r.source) for r in reg.domain_rules()}
    assert kinds == {
        "telegram.org": (MatchKind.EXACT, f"{path}:6"),
        "twimg.com": (MatchKind.SUFFIX, f"{path}:7"),
        "t.co": (MatchKind.SUBSTRING, f"{path}:8"),
    }
    stats = reg.sources[0]
    assert (stats.rows, stats.addresses, stats.prefixes, stats.domains) == (6, 1, 2, 3)


def test_bare_domains_take_the_kind_asked_for(tmp_path: Path) -> None:
    reg = load_list(write(tmp_path, "d.lst", "rutracker.org\n"), domain_kind=MatchKind.SUBTREE)
    assert reg.match_domain("www.rutracker.org") is not None


def test_bad_ip_on_line_3_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.lst", "10.0.0.0/8\n11.0.0.1\n12.0.0.300\n13.0.0.1\n")
    with pytest.raises(RegistryLoadError) as caught:
        load_list(path)
    err = caught.value
    assert str(err).startswith(f"{path}:3: address: ")
    assert "12.0.0.300" in str(err)
    assert (err.file, err.line, err.field) == (str(path), 3, "address")
    # Nothing read before the bad line is lost.
    assert [str(p) for p in err.partial.aggregated_prefixes()] == ["10.0.0.0/8", "11.0.0.1/32"]


def test_lenient_list_warns_and_loads_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.lst", "10.0.0.0/8\n11.0.0.1\n12.0.0.300\n13.0.0.1\nbad_host:80\n")
    reg = load_list(path, strict=False)
    assert str(reg.warnings[0]).startswith(f"{path}:3: address: not an IPv4")
    assert reg.warnings[1].line == 5 and reg.warnings[1].field == "domain"
    assert reg.contains_address("13.0.0.1") is not None
    assert reg.sources[0].skipped == 2


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("10.0.0.1/24", "address", "host bits set"),
        ("1.2.3.4 5.6.7.8", "entry", "one entry per line"),
        ("*twitter.com", "domain", "ambiguous wildcard"),
        ("exa_mple..com", "domain", "empty label"),
    ],
)
def test_each_kind_of_bad_line(tmp_path: Path, line: str, field: str, reason: str) -> None:
    path = write(tmp_path, "x.lst", f"# c\n{line}\n")
    with pytest.raises(RegistryLoadError, match=reason) as caught:
        load_list(path)
    assert (caught.value.line, caught.value.field) == (2, field)


def test_list_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "enc.lst"
    path.write_bytes(b"1.1.1.1\nexample\xff.com\n")
    with pytest.raises(RegistryLoadError, match=r"enc\.lst:2: encoding"):
        load_list(path)


def test_gzip_list(tmp_path: Path) -> None:
    path = tmp_path / "l.lst.gz"
    path.write_bytes(gzip.compress(b"10.0.0.0/8\n"))
    assert load_list(path).address_count(4) == 1 << 24


def test_inline_entries_name_their_position() -> None:
    reg = load_inline(["18.196.0.0/15", "web.telegram.org"], "scenario.registry[1].inline")
    assert reg.address_entries()[0].source == "scenario.registry[1].inline[0]"
    assert reg.domain_rules()[0].source == "scenario.registry[1].inline[1]"
    with pytest.raises(RegistryLoadError, match=r"^inline\[1\]: address: .*300") as caught:
        load_inline(["1.1.1.1", "1.1.1.300"])
    assert caught.value.partial.address_count(4) == 1


# -- Roskomnadzor dump --------------------------------------------------------------------------
DUMP = (
    "Updated: 2018-05-05 13:25:00 +0000\n"
    "149.154.167.99 | 149.154.167.220;telegram.org;;Роскомнадзор;2-1779/2018;2018-04-13\n"
    "91.108.4.0/22;;;Роскомнадзор;2-1779/2018;2018-04-13\n"
    '160.153.62.102;forum.example;"http://forum.example/i.php?topic=1;wap2";суд;2-522/2014;2014-12-03\n'
    "1.2.3.4;*.olimp.example;;ФНС;2-6-27/2016;2016-04-11\n"
    "5.6.7.8;пример.рф;;суд;2-1/2017;2017-01-01\n"
)


def test_dump_rows_ips_domains_and_quoted_urls(tmp_path: Path) -> None:
    path = write(tmp_path, "dump.csv", DUMP, "cp1251")
    reg = load_rkn_dump(path)
    assert reg.updated == "2018-05-05 13:25:00 +0000"
    assert reg.warnings == []
    assert reg.entry_count() == 6
    assert reg.contains_address("149.154.167.220").source == f"{path}:2"  # type: ignore[union-attr]
    assert reg.contains_address("160.153.62.102").decision == "2-522/2014"  # type: ignore[union-attr]
    mask = reg.match_domain("a.olimp.example")
    assert mask is not None and mask.kind is MatchKind.SUBTREE and mask.pattern == "*.olimp.example"
    assert reg.match_domain("olimp.example") is not None  # masks cover the apex by default
    assert reg.match_domain("xn--e1afmkfd.xn--p1ai") is not None  # IDN as the SNI carries it
    assert reg.match_domain("telegram.org").decision == "2-1779/2018"  # type: ignore[union-attr]
    suffix_only = load_rkn_dump(path, mask_kind=MatchKind.SUFFIX)
    assert suffix_only.match_domain("olimp.example") is None
    stats = reg.sources[0]
    assert (stats.rows, stats.rows_kept, stats.addresses, stats.prefixes) == (5, 5, 5, 1)


def test_dump_filtered_by_decision(tmp_path: Path) -> None:
    reg = load_rkn_dump(write(tmp_path, "dump.csv", DUMP, "cp1251"), decisions={"2-1779/2018"})
    assert [str(p) for p in reg.aggregated_prefixes()] == [
        "91.108.4.0/22",
        "149.154.167.99/32",
        "149.154.167.220/32",
    ]
    assert [r.name for r in reg.domain_rules()] == ["telegram.org"]
    assert reg.sources[0].rows == 5 and reg.sources[0].rows_kept == 2


def test_dump_bad_ip_on_line_3_warns_and_keeps_the_rest(tmp_path: Path) -> None:
    text = DUMP.replace("91.108.4.0/22;", "91.108.4.0/22 | 91.108.300.1;")
    path = write(tmp_path, "dump.csv", text, "cp1251")
    reg = load_rkn_dump(path)
    assert [str(w) for w in reg.warnings] == [
        f"{path}:3: address: not an IPv4 address: '91.108.300.1'"
    ]
    assert reg.contains_address("91.108.4.1") is not None  # same row, good field kept
    assert reg.contains_address("5.6.7.8") is not None  # later rows kept
    with pytest.raises(RegistryLoadError, match=r"dump\.csv:3: address") as caught:
        load_rkn_dump(path, strict=True)
    assert caught.value.partial.contains_address("149.154.167.99") is not None


def test_dump_bad_domain_and_short_row_warn(tmp_path: Path) -> None:
    text = (
        DUMP.replace("forum.example;", "forum example;")
        + "9.9.9.9;x.example\n"
        + DUMP.splitlines()[3]
        + "\n"
    )
    path = write(tmp_path, "dump.csv", text, "cp1251")
    reg = load_rkn_dump(path)
    assert [(w.line, w.field) for w in reg.warnings] == [(4, "domain"), (7, "row")]
    assert reg.contains_address("160.153.62.102") is not None


def test_dump_cut_off_last_line_is_a_warning_even_when_strict(tmp_path: Path) -> None:
    text = DUMP + "79.111.156.97 | 93.95.98.75;forum.69r.ru;http://forum.69r.ru/index.php?s=4a"
    path = write(tmp_path, "dump.csv", text, "cp1251")
    for strict in (False, True):
        reg = load_rkn_dump(path, strict=strict)
        assert len(reg.warnings) == 1
        warning = reg.warnings[0]
        assert (warning.file, warning.line) == (str(path), 7)
        assert "cut off" in warning.message
        assert reg.contains_address("79.111.156.97") is None
        assert reg.entry_count() == 6


def test_dump_gzip_and_missing_header(tmp_path: Path) -> None:
    path = tmp_path / "dump.csv.gz"
    path.write_bytes(gzip.compress("\n".join(DUMP.splitlines()[1:]).encode("cp1251") + b"\n"))
    reg = load_rkn_dump(path)
    assert [(w.line, w.field) for w in reg.warnings] == [(1, "header")]
    assert reg.entry_count() == 6  # without a header the first line is read as a row: none lost
    with pytest.raises(RegistryLoadError, match="header"):
        load_rkn_dump(path, strict=True)


def test_real_2018_partial_dump() -> None:
    reg = load_rkn_dump(data(DUMP_2018))
    assert reg.updated == "2018-05-05 13:25:00 +0000"
    assert [(w.line, w.field) for w in reg.warnings] == [(32798, "url")]
    assert "cut off" in reg.warnings[0].message
    stats = reg.sources[0]
    assert stats.rows == 32797 and stats.rows_kept == 32796  # README: 32,796 rows + a cut line
    assert stats.prefixes == 74  # README: 74 CIDRs
    singles = {e.first for e in reg.address_entries(4) if e.prefixlen == 32}
    assert len(singles) == 36_430  # README: 36,430 IPs


@pytest.mark.parametrize("decision", sorted(TELEGRAM_DECISIONS))
def test_decision_filter_reproduces_the_telegram_stage_files(decision: str) -> None:
    from_dump = load_rkn_dump(data(DUMP_2018), decisions={decision})
    from_list = load_list(data(TELEGRAM_DECISIONS[decision]))
    assert from_dump.aggregated_prefixes() == from_list.aggregated_prefixes()
    # The cut-off last line has no decision field left, so it is reported under any filter.
    assert [w.line for w in from_dump.warnings] == [32798]
    assert all(e.decision == decision for e in from_dump.address_entries())


def test_real_2016_dump() -> None:
    reg = load_rkn_dump(data(DUMP_2016))
    assert reg.updated == "2016-06-13 11:12:00 +0000" and reg.warnings == []
    assert reg.sources[0].rows == 30_662  # README: 30,662 rows
    assert reg.address_count(4) == 19_270  # README: 19,270 unique IPs, no CIDRs
    assert reg.sources[0].prefixes == 0


# -- cloud ranges and AWS -------------------------------------------------------------------------
def test_aws_2018_with_region_and_service_filter() -> None:
    path = data("aws-ip-ranges/ip-ranges_2018-04-05.json")
    everything = load_aws_ranges(path)
    assert everything.address_count(4) == 30_922_456  # README
    frankfurt = load_aws_ranges(path, regions={"eu-central-1"}, services={"EC2"})
    for prefix in ("52.58.0.0/15", "18.196.0.0/15", "18.194.0.0/15", "35.156.0.0/14"):
        assert frankfurt.contains_address(IPv4Network(prefix).network_address) is not None
    assert frankfurt.address_count(4) < everything.address_count(4)
    entry = frankfurt.contains_address("18.196.112.7")
    assert entry is not None and entry.source.startswith(f"{path}:prefixes[")


def test_aws_2026_has_ipv6() -> None:
    reg = load_aws_ranges(data("aws-ip-ranges/ip-ranges_2026-08-22.json"))
    assert reg.address_count(6) > 0 and reg.prefix_count(6) > 0


def test_aws_bad_items_name_their_index(tmp_path: Path) -> None:
    doc = {
        "prefixes": [{"ip_prefix": "3.5.140.0/22"}, {"ip_prefx": "x"}, {"ip_prefix": "3.5.1.0/33"}]
    }
    path = write(tmp_path, "ip-ranges.json", json.dumps(doc))
    with pytest.raises(RegistryLoadError, match=r"ip-ranges\.json:prefixes\[1\]: ip_prefix"):
        load_aws_ranges(path)
    reg = load_aws_ranges(path, strict=False)
    assert [w.file.rsplit(":", 1)[1] for w in reg.warnings] == ["prefixes[1]", "prefixes[2]"]
    assert reg.address_count(4) == 1024
    broken = write(tmp_path, "broken.json", '{"prefixes": [\n')
    with pytest.raises(RegistryLoadError, match=r"broken\.json:2: json"):
        load_aws_ranges(broken)


def test_cloud_ranges_telegram_matches_the_published_cidr_list() -> None:
    root = data("cloud-ranges/lord-alfred-ipranges")
    reg = load_cloud_ranges(root, "telegram")
    published = load_list(data("telegram/telegram_cidr_2026.txt"))
    assert reg.aggregated_prefixes() == published.aggregated_prefixes()
    assert reg.prefix_count(6) > 0
    assert load_cloud_ranges(root, "telegram", versions=(4,)).prefix_count(6) == 0
    with pytest.raises(FileNotFoundError):
        load_cloud_ranges(root, "no-such-cloud")


# -- Re-filter 2026 lists -------------------------------------------------------------------------
def test_refilter_lists_load_and_real_bad_lines_are_named() -> None:
    folder = "rkn-registry/refilter-2026-07/"
    domains = load_list(data(folder + "domains_all.lst"), domain_kind=MatchKind.SUBTREE)
    stats = domains.sources[0]
    assert stats.rows == 86_140 and domains.warnings == []  # README: 86,140 domains ...
    assert (stats.domains, stats.addresses) == (86_133, 7)  # ... of which 7 lines are IPs
    ips = load_list(data(folder + "ipsum.lst"))
    assert ips.entry_count() == 30_746
    # ooni_domains.lst really holds "192.144.15.242:51820" on line 28: a strict load says so.
    with pytest.raises(RegistryLoadError, match=r"ooni_domains\.lst:28: address: .*port"):
        load_list(data(folder + "ooni_domains.lst"))
    ooni = load_list(data(folder + "ooni_domains.lst"), strict=False)
    stats = ooni.sources[0]
    assert stats.domains + stats.addresses + stats.prefixes + len(ooni.warnings) == stats.rows
    merged = Registry().merge(domains).merge(ips)
    assert merged.match_domain("rutracker.org") is not None
