"""Scalar types of the scenario language: addresses, prefixes, names, durations and times.

Each type carries its own check and a readable message (pydantic custom errors), so a bad value is
reported at its own key. Durations are written `<n>d<n>h<n>m<n>s` ("2h", "1d12h", "90s"); scenario
times are relative to the clock start ("+3d4h30m", "0s") or absolute ISO 8601 instants with a zone
(`2018-04-16T12:00:00Z`, which YAML may already read as a timestamp).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from tspulab.dpi.yamlload import did_you_mean, listed

# Topologies a scenario may name; the lab layer extends this as topologies/ grows.
#: Every run uses topologies/multi_isp.py: `isps` names one or more ISPs with a TSPU each around
#: an exchange; `single-isp` is its one-ISP form (a scenario without `isps`, or with one).
KNOWN_TOPOLOGIES: tuple[str, ...] = ("isps", "single-isp")
# Profiles that exist before any data file ships in tspulab/profiles/.
BUILTIN_PROFILES: tuple[str, ...] = ("rkn-2018-ip",)
PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


# Addresses a lab host cannot have. The lab's own ranges are those the topologies assign
# (topologies/multi_isp.py; a unit test keeps them in step): subscriber
# networks 10.<n>.0.0/24, and the transit/exchange network where routers, clouds and the resolver
# meet. The rest are special-purpose ranges (RFC 6890) that no host on a path can answer on.
SPECIAL_RANGES: tuple[tuple[IPv4Network | IPv6Network, str], ...] = (
    (IPv4Network("0.0.0.0/32"), "the unspecified address"),
    (IPv4Network("0.0.0.0/8"), "'this network' (RFC 1122), never a destination"),
    (IPv4Network("127.0.0.0/8"), "loopback: it never leaves the host"),
    (IPv4Network("169.254.0.0/16"), "link-local: not routed"),
    (IPv4Network("224.0.0.0/4"), "multicast"),
    (IPv4Network("240.0.0.0/4"), "reserved (and 255.255.255.255, broadcast)"),
    (IPv6Network("::/128"), "the unspecified address"),
    (IPv6Network("::1/128"), "loopback: it never leaves the host"),
    (IPv6Network("::ffff:0:0/96"), "IPv4-mapped: write the IPv4 address itself"),
    (IPv6Network("fe80::/10"), "link-local: not routed"),
    (IPv6Network("ff00::/8"), "multicast"),
)
LAB_RANGES: tuple[tuple[IPv4Network | IPv6Network, str], ...] = (
    (IPv4Network("10.0.0.0/8"), "the lab's own subscriber networks (10.<n>.0.0/24)"),
    (IPv4Network("100.64.0.0/22"), "the lab's own transit network (routers, clouds, resolver)"),
)


def lab_address_problem(value: IPv4Address | IPv6Address | IPv4Network | IPv6Network) -> str | None:
    """Why an address (or a prefix, for a cloud) cannot be a lab host's: the special or lab range
    it lies in or overlaps, with the reason; None when it is a usable unicast address."""
    for network, reason in (*SPECIAL_RANGES, *LAB_RANGES):
        if network.version != value.version:
            continue
        if isinstance(value, IPv4Network | IPv6Network):
            if value.overlaps(network):
                return f"{value} overlaps {network}, {reason}; a cloud needs public prefixes"
        elif value in network:
            return f"{value} is in {network}, {reason}; a lab host needs a public unicast address"
    return None


def known_profiles() -> tuple[str, ...]:
    """Behaviour profile names: the built-in ones plus the stems of tspulab/profiles/*.yaml."""
    shipped = {p.stem for p in PROFILES_DIR.glob("*.yaml")} if PROFILES_DIR.is_dir() else set()
    return tuple(sorted(shipped | set(BUILTIN_PROFILES)))


# --- scalar types -------------------------------------------------------------------------


def _parse_address(value: object) -> IPAddress:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "ip_address", "expected an IP address, got {input}", {"input": repr(value)}
        )
    try:
        return ip_address(value)
    except ValueError:
        raise PydanticCustomError(
            "ip_address", "'{value}' is not an IPv4 or IPv6 address", {"value": value}
        ) from None


def _parse_network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "ip_network",
            "expected an IP address or CIDR prefix, got {input}",
            {"input": repr(value)},
        )
    try:
        return ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        network = ip_network(value, strict=False)
    except ValueError:
        raise PydanticCustomError(
            "ip_network", "'{value}' is not an IPv4/IPv6 address or CIDR prefix", {"value": value}
        ) from None
    raise PydanticCustomError(
        "ip_network",
        "{value} has host bits set; did you mean {network}?",
        {"value": value, "network": str(network)},
    )


def _slug_check(max_length: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(SLUG_PATTERN, value) or len(value) > max_length:
            raise PydanticCustomError(
                "slug",
                "'{value}' is not a valid name: lowercase letters, digits and '-', starting with "
                "a letter or digit, at most {max} characters",
                {"value": value, "max": max_length},
            )
        return value

    return check


def _slug_schema(max_length: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": SLUG_PATTERN, "maxLength": max_length})


def _check_domain(value: str) -> str:
    name = value.lower().removesuffix(".")
    labels = name.split(".")
    valid = (
        len(name) <= 253
        and len(labels) >= 2
        and all(
            0 < len(label) <= 63
            and label[0] != "-"
            and label[-1] != "-"
            and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
            for label in labels
        )
        and not labels[-1].isdigit()
    )
    if not valid:
        raise PydanticCustomError(
            "domain",
            "'{value}' is not a valid DNS name (dot-separated labels of letters, digits and '-', "
            "each 1-63 characters, at least two labels)",
            {"value": value},
        )
    return name


Address = Annotated[
    IPAddress,
    PlainValidator(_parse_address),
    WithJsonSchema({"type": "string", "description": "IPv4 or IPv6 address"}),
]
Network = Annotated[
    IPNetwork,
    PlainValidator(_parse_network),
    WithJsonSchema({"type": "string", "description": "IP address or CIDR prefix, host bits zero"}),
]
Domain = Annotated[
    str,
    Strict(),
    AfterValidator(_check_domain),
    WithJsonSchema({"type": "string", "format": "hostname"}),
]
ScenarioName = Annotated[str, Strict(), AfterValidator(_slug_check(40)), _slug_schema(40)]
CloudName = Annotated[str, Strict(), AfterValidator(_slug_check(20)), _slug_schema(20)]
ServiceName = Annotated[str, Strict(), AfterValidator(_slug_check(40)), _slug_schema(40)]
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number: `.inf` and `.nan` are refused (a wait of .inf seconds never ends)."""
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


def unknown_name(kind: str, value: str, known: tuple[str, ...]) -> PydanticCustomError:
    """'unknown profile 'x'; did you mean 'y'?' (or the list of known names) as a pydantic error."""
    hint = did_you_mean(value, known) or f" (known: {listed(known, 30)})"
    return PydanticCustomError(
        "unknown_name",
        "unknown {kind} '{value}'{hint}",
        {"kind": kind, "value": value, "hint": hint},
    )


# --- durations and scenario times ---------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
DURATION_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$"
RELATIVE_PATTERN = r"^\+?(\d+d)?(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$"
_UNITS = (("d", 86400), ("h", 3600), ("m", 60))
DURATION_HINT = "a duration such as '2h', '1d12h', '90s' (units d, h, m, s in that order)"


MAX_DURATION_S = 100 * 365 * 86400
"""The longest duration or scenario time: 100 years (36500d), far past any censorship episode; it
also keeps numbers of thousands of digits out of int() and float()."""


def parse_duration(text: str) -> float:
    """Seconds in `<n>d<n>h<n>m<n>s` ("1d12h" -> 129600.0); ValueError when it is not one or is
    longer than `MAX_DURATION_S`."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"'{text}' is not {DURATION_HINT}")
    days, hours, minutes, seconds = match.groups()
    if any(len(part) > 15 for part in match.groups() if part):
        seconds_total = float("inf")
    else:
        seconds_total = (
            int(days or 0) * 86400
            + int(hours or 0) * 3600
            + int(minutes or 0) * 60
            + float(seconds or 0)
        )
    if seconds_total > MAX_DURATION_S:
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
        raise ValueError(
            f"'{shown}' is longer than the limit of {MAX_DURATION_S // 86400}d (100 years)"
        )
    return seconds_total


def format_duration(seconds: float) -> str:
    """The shortest `<n>d<n>h<n>m<n>s` text of a non-negative duration: 129600 -> "1d12h"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    whole, fraction = divmod(seconds, 1)
    rest, out = int(whole), ""
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        out += f"{count}{unit}" if count else ""
    secs = rest + fraction
    if secs or not out:
        out += f"{secs:g}s" if fraction else f"{int(secs)}s"
    return out


def is_relative_time(text: str) -> bool:
    """Whether `text` is a time relative to the clock start: "+3d4h30m", "0s", "90s"."""
    return bool(text.removeprefix("+")) and _DURATION.fullmatch(text.removeprefix("+")) is not None


FIRST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
END_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
"""Absolute times lie in 1900..2199: far from datetime's ends (year 1 at +01:00 does not exist in
UTC; a start in 9999 plus a day of scenario time overflows), and 100 years of scenario time
(`MAX_DURATION_S`) after the last of them still fits."""


def _as_aware(value: datetime) -> datetime:
    # ruamel's TimeStamp is a datetime subclass; keep a plain datetime in UTC.
    plain = datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
    )
    return plain.astimezone(UTC)


def parse_instant(value: object) -> datetime:
    """An absolute time with a zone, from a YAML timestamp or an ISO 8601 string."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "instant",
                "'{value}' is not an ISO 8601 time such as 2018-04-16T12:00:00Z",
                {"value": value},
            ) from None
        # A bare date parses as midnight: keep it a date, so the error asks for a time of day.
        value = parsed.date() if "T" not in value.upper() and " " not in value else parsed
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError(
                "instant",
                "{value} has no time zone; write it with one, e.g. {example}",
                {"value": value.isoformat(), "example": value.isoformat() + "Z"},
            )
        try:
            aware = _as_aware(value)
        except OverflowError:  # year 1 at +01:00 is in year 0 in UTC
            aware = None
        if aware is None or not FIRST_INSTANT <= aware < END_INSTANT:
            raise PydanticCustomError(
                "instant",
                "{value} is outside the years {first} to {last} (the limit on scenario times)",
                {
                    "value": value.isoformat(),
                    "first": FIRST_INSTANT.year,
                    "last": END_INSTANT.year - 1,
                },
            )
        return aware
    if isinstance(value, date):
        raise PydanticCustomError(
            "instant",
            "{value} is a date; give a time of day and a zone, e.g. {value}T00:00:00Z",
            {"value": value.isoformat()},
        )
    raise PydanticCustomError(
        "instant",
        "expected an ISO 8601 time such as 2018-04-16T12:00:00Z, got {input}",
        {"input": repr(value)},
    )


def _parse_duration_value(value: object) -> str:
    if isinstance(value, str) and not isinstance(value, bool):
        try:
            parse_duration(value)
        except ValueError as err:
            raise PydanticCustomError("duration", str(err)) from None
        return value
    shown = f"; write '{value}s' for seconds" if type(value) in (int, float) else ""
    raise PydanticCustomError(
        "duration",
        "expected {hint}, got {input}{shown}",
        {"hint": DURATION_HINT, "input": repr(value), "shown": shown},
    )


def _parse_time(value: object) -> str | datetime:
    """A relative time string kept as written, or an absolute instant (datetime, UTC)."""
    if isinstance(value, str) and is_relative_time(value):
        try:
            parse_duration(value.removeprefix("+"))
        except ValueError as err:
            raise PydanticCustomError("time", str(err)) from None
        return value
    if isinstance(value, str) and not _looks_absolute(value):
        raise PydanticCustomError(
            "time",
            "'{value}' is not a time: write '+3d4h' (after the clock start) or an ISO 8601 "
            "time such as 2018-04-16T12:00:00Z",
            {"value": value},
        )
    return parse_instant(value)


def _looks_absolute(text: str) -> bool:
    return re.match(r"\d{4}-\d{2}-\d{2}", text) is not None


def _parse_time_or_label(value: object) -> str | datetime:
    """A time (as `_parse_time`) or, for any other non-empty string, a timeline label."""
    if isinstance(value, str) and not is_relative_time(value) and not _looks_absolute(value):
        if not value.strip():
            raise PydanticCustomError("label", "a timeline label must not be empty")
        return value
    return _parse_time(value)


def _check_label(value: str) -> str:
    if not value.strip() or len(value) > 60:
        raise PydanticCustomError(
            "label", "a label is 1 to 60 characters, got {value}", {"value": repr(value)}
        )
    if is_relative_time(value) or _looks_absolute(value) or value == "start":
        raise PydanticCustomError(
            "label",
            "'{value}' cannot be a label: it reads as a time (or is 'start', the step before "
            "the first entry)",
            {"value": value},
        )
    return value


def time_offset_s(value: str | datetime, start: datetime | None) -> float | None:
    """Scenario seconds since the clock start; None for an absolute time without a start."""
    if isinstance(value, datetime):
        return None if start is None else (value - start).total_seconds()
    return parse_duration(value.removeprefix("+"))


_TIME_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": RELATIVE_PATTERN},
        {"type": "string", "format": "date-time"},
    ]
}
Duration = Annotated[
    str,
    PlainValidator(_parse_duration_value),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
Instant = Annotated[
    datetime,
    # Before, not Plain: a PlainValidator datetime warns when dumped as JSON (pydantic 2.14).
    BeforeValidator(parse_instant),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
TimeRef = Annotated[str | datetime, PlainValidator(_parse_time), WithJsonSchema(_TIME_SCHEMA)]
TimeOrLabel = Annotated[
    str | datetime,
    PlainValidator(_parse_time_or_label),
    WithJsonSchema({"anyOf": [*_TIME_SCHEMA["anyOf"], {"type": "string"}]}),
]
Label = Annotated[str, Strict(), AfterValidator(_check_label)]
IspName = Annotated[str, Strict(), AfterValidator(_slug_check(12)), _slug_schema(12)]
MethodName = Annotated[str, Strict(), AfterValidator(_slug_check(20)), _slug_schema(20)]


class Section(BaseModel):
    """A mapping of the scenario file: unknown keys are errors, and it cannot change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
