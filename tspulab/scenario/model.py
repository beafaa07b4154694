"""The scenario language, version 1: typed, frozen pydantic models, one per YAML section.

Scalar types carry their own checks (IP addresses, CIDR prefixes with host bits zero, DNS
names, slugs) and readable messages; checks that relate sections to each other (cloud names,
prefix containment and overlap, uniqueness) live in `tspulab.scenario.schema`, which also loads
files. Field names here are the YAML keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    Strict,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from tspulab.scenario.yamlload import did_you_mean

# Topologies a scenario may name; the lab layer extends this as topologies/ grows.
KNOWN_TOPOLOGIES: tuple[str, ...] = ("single-isp",)
# Profiles that exist before any data file ships in tspulab/profiles/.
BUILTIN_PROFILES: tuple[str, ...] = ("rkn-2018-ip",)
PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
DATA_PREFIX = "data:"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


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
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


def _unknown(kind: str, value: str, known: tuple[str, ...]) -> PydanticCustomError:
    hint = did_you_mean(value, known) or f" (known: {', '.join(known)})"
    return PydanticCustomError(
        "unknown_name",
        "unknown {kind} '{value}'{hint}",
        {"kind": kind, "value": value, "hint": hint},
    )


# --- models -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Topology(_Model):
    """Which topology class builds the network, and how many subscriber hosts it has."""

    name: Str
    subscribers: Int = Field(default=2, ge=1, le=50)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KNOWN_TOPOLOGIES:
            raise _unknown("topology", value, KNOWN_TOPOLOGIES)
        return value


class RegistrySource(_Model):
    """One source of registry entries: exactly one of `inline`, `domains` or `file`."""

    inline: tuple[Network, ...] | None = Field(default=None, min_length=1)
    domains: tuple[Str, ...] | None = Field(default=None, min_length=1)
    """Domain rules (SNI/Host), all of the kind given by `match`."""
    match: Literal["exact", "suffix", "subtree", "substring"] = "exact"
    file: Str | None = None
    format: Literal["list", "rkn-dump"] = "list"
    decisions: tuple[Str, ...] | None = None

    @property
    def kind(self) -> Literal["inline", "domains", "file"]:
        if self.inline is not None:
            return "inline"
        return "domains" if self.domains is not None else "file"


class Dns(_Model):
    """The resolver subscribers use; it must be reachable, so outside every cloud prefix."""

    address: Address = IPv4Address("77.88.8.8")


class Cloud(_Model):
    """A hosting network: its prefixes, and whether it is domestic (inside Russia)."""

    name: CloudName
    prefixes: tuple[Network, ...] = Field(min_length=1)
    domestic: Bool = False


class Service(_Model):
    """A service at one address of a cloud: a target of blocking or an innocent bystander."""

    name: ServiceName
    role: Literal["target", "innocent"]
    domains: tuple[Domain, ...] = Field(min_length=1)
    cloud: Str
    address: Address
    users: Int = Field(default=1, ge=1)
    protocol: Literal["https"] = "https"


class Probes(_Model):
    """How often and how patiently each service is probed from each subscriber."""

    rounds: Int = Field(default=1, ge=1, le=100)
    timeout_s: Float = Field(default=3.0, ge=0.5, le=60)
    interval_s: Float = Field(default=0.0, ge=0)
    transfer_bytes: Int = Field(default=0, ge=0, le=64 * 1024 * 1024)
    """When > 0, each probe also downloads this many bytes (of /bulk) and records the goodput."""
    degraded_below_kbps: Float = Field(default=1000.0, gt=0)
    """A reachable service whose median goodput is below this is *degraded* (throttled)."""


class Scenario(_Model):
    """A validated scenario (version 1). `path` is the file it was loaded from."""

    version: Literal[1]
    name: ScenarioName
    description: Str = ""
    topology: Topology
    profile: Str
    registry: tuple[RegistrySource, ...] = ()
    dns: Dns = Dns()
    clouds: tuple[Cloud, ...]
    services: tuple[Service, ...]
    probes: Probes = Probes()
    profile_sets: dict[Str, tuple[Str, ...]] = {}
    """Entries added to the profile's named sets (e.g. the SNI-I list of tspu-2022)."""

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # Lax Literal[1] would take `true` and `1.0`; a version is an integer.
        if type(value) is not int:
            raise PydanticCustomError(
                "version", "expected the integer 1, got {value}", {"value": repr(value)}
            )
        return value

    _path: Path = PrivateAttr(default_factory=lambda: Path("scenario.yaml"))

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        known = known_profiles()
        if value not in known:
            raise _unknown("profile", value, known)
        return value

    @property
    def path(self) -> Path:
        return self._path

    @property
    def source_dir(self) -> Path:
        return self._path.parent

    def cloud(self, name: str) -> Cloud:
        return next(c for c in self.clouds if c.name == name)

    def registry_file(self, source: RegistrySource) -> Path:
        """The resolved path of a `file:` registry source."""
        if source.file is None:
            raise ValueError("inline registry source has no file")
        return resolve_data_path(source.file, self._path)


def scenario_json_schema() -> dict[str, Any]:
    """JSON Schema of the scenario language, for editors (structure only, not cross-checks).

    The names of topologies and profiles are listed as enums as they are known now, so an
    editor completes them; the validator itself reads them at load time.
    """
    schema = Scenario.model_json_schema()
    schema["properties"]["profile"]["enum"] = list(known_profiles())
    schema["$defs"]["Topology"]["properties"]["name"]["enum"] = list(KNOWN_TOPOLOGIES)
    return schema


# --- paths --------------------------------------------------------------------------------


def _repo_root(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def data_dir(scenario_path: Path) -> Path:
    """The reference data folder: $TSPULAB_DATA_DIR, else <repo>/../shared/data."""
    env = os.environ.get("TSPULAB_DATA_DIR")
    if env:
        return Path(env)
    root = _repo_root(scenario_path.resolve().parent)
    return (root / ".." / "shared" / "data").resolve() if root else Path("../shared/data").resolve()


def resolve_data_path(raw: str, scenario_path: Path) -> Path:
    """`data:REL` against the reference data folder, else relative to the scenario's folder."""
    if raw.startswith(DATA_PREFIX):
        return data_dir(scenario_path) / raw.removeprefix(DATA_PREFIX)
    return scenario_path.parent / raw
