"""The contracts between tspulab's processes and layers, as types read and written by this code.

A run directory is how the parts talk: the lab writes `controller.json` for the os-ken controller
(another process), the controller writes `controller-events.jsonl`, the run writes `run.json` and
`results.jsonl`, and the report reads them back, possibly much later. Each file has one model here;
the writer serialises the model and the reader validates into it, so a key that no writer sets or
a field of the wrong type is an error naming the file and the field, not a silent default.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RUN_FILE = "run.json"
CONTROLLER_FILE = "controller.json"
EVENTS_FILE = "controller-events.jsonl"
RESULTS_FILE = "results.jsonl"
FAULTS_FILE = "faults.jsonl"


class ContractError(ValueError):
    """A contract file is missing, not JSON, or does not match its model."""


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def read(cls, path: Path) -> Self:
        """Read and validate; errors name the file and each bad field (`tspus[0].dpid: ...`)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ContractError(f"{path}: cannot read: {err.strerror}") from err
        except json.JSONDecodeError as err:
            raise ContractError(f"{path}:{err.lineno}:{err.colno}: not JSON: {err.msg}") from err
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: Any, where: str) -> Self:
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(_loc(e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors()
            )
            raise ContractError(f"{where}: {problems}") from err

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")


def _loc(loc: tuple[int | str, ...]) -> list[str]:
    out: list[str] = []
    for part in loc:
        if isinstance(part, int) and out:
            out[-1] += f"[{part}]"
        else:
            out.append(str(part))
    return out


# --- controller.json: what the lab tells the controller -----------------------------------------


class TspuSwitchConfig(Contract):
    """One TSPU switch (one per ISP) as the controller is told to run it."""

    name: str
    """The ISP; it names the TSPU in logs, events and reports."""
    dpid: int = Field(ge=1)
    subscriber_port: int = Field(ge=1)
    upstream_port: int = Field(ge=1)
    subscriber_if: str
    """Interface names of the two ports in the run's network namespace (nftables loss rules)."""
    upstream_if: str
    registry_file: Path | None = None
    registry_prefixes: list[str] = []
    profile: str | None = None
    """A packaged profile name or a path; None: registry IP drops only."""
    profile_sets: dict[str, list[str]] = {}
    subscriber_nets: list[str] = []
    time_scale: float = Field(default=1.0, gt=0)
    nft_table: str = ""
    control_socket: Path | None = None
    fail_mode: Literal["closed", "open"] = "closed"
    bypass_hosts: list[str] = []
    """Subscriber addresses whose traffic the TSPU does not inspect (partial coverage)."""


class OldFilterSwitchConfig(Contract):
    """One ISP's own older filter (tspulab.dpi.oldfilter), a switch of its own on the ISP's path."""

    name: str
    """The ISP; it names the filter in logs, events and reports."""
    dpid: int = Field(ge=1)
    subscriber_port: int = Field(ge=1)
    upstream_port: int = Field(ge=1)
    registry_file: Path | None = None
    """The filter's own list (domains), as `write_registry` writes it."""
    blockpage: str
    http: Literal["redirect", "page", "off"] = "redirect"
    https: Literal["reset", "off"] = "reset"
    dns: Literal["blockpage", "nxdomain", "off"] = "blockpage"
    mode: Literal["passive", "inline"] = "passive"
    http_ports: list[int] = [80]


class ControllerFile(Contract):
    """`controller.json`: every TSPU switch of the run, every ISP's old filter; others learn."""

    tspus: list[TspuSwitchConfig]
    events_log: Path | None
    old_filters: list[OldFilterSwitchConfig] = []


# --- controller-events.jsonl: what the controller did --------------------------------------------


class EventKind(StrEnum):
    """The `event` of each line of controller-events.jsonl."""

    SWITCH_UP = "switch-up"
    SWITCH_DOWN = "switch-down"
    SWITCH_ERROR = "switch-error"
    TSPU_RULES_SENT = "tspu-rules-sent"
    TSPU_RULES_INSTALLED = "tspu-rules-installed"
    PACKET_IN_REFUSED = "packet-in-refused"
    VERDICT = "verdict"
    DETECT = "detect"
    FLOW_EXPIRED = "flow-expired"
    REGISTRY_RULES_SENT = "registry-rules-sent"
    REGISTRY_UPDATE = "registry-update"
    PROFILE_CHANGE = "profile-change"
    PROFILE_SETS_UNUSED = "profile-sets-unused"
    HANDLER_ERROR = "handler-error"
    NFT_ERROR = "nft-error"
    LOSS_ON = "loss-on"
    """A flow's random-loss rule is in the kernel; `delay_ms` after the verdict asked for it."""
    NFT_DEFERRED = "nft-deferred"
    """The loss worker could not make its table and chains as it started; it retries per rule."""
    OLD_FILTER_RULES_SENT = "old-filter-rules-sent"
    OLD_FILTER_RULES_INSTALLED = "old-filter-rules-installed"
    OLD_FILTER_VERDICT = "old-filter-verdict"
    """An ISP's old filter acted on a flow (HTTP block, TLS reset, DNS tampering)."""


def events_of(events: list[dict[str, Any]], kind: EventKind) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == kind]


# --- run.json: what the run was -------------------------------------------------------------------


class IspMeta(Contract):
    name: str
    profile: str | None
    coverage: float
    update_delay_s: float
    fail_mode: str
    subscribers: list[str]
    tspu_switch: str
    weights: dict[str, float] = {}
    """Real subscribers each host stands for (the scenario's `customers` split by coverage);
    empty in runs of older versions: every host weighs 1."""


class ServiceMeta(Contract):
    name: str
    role: Literal["target", "innocent"]
    users: int
    address: str
    cloud: str
    population: str | None = None


class RunMeta(Contract):
    """`run.json`, written at the start of a run; the report reads it back."""

    name: str
    scenario: str
    started: float
    clock_start: str | None
    clock_speed: float
    tspu: bool
    capture: bool
    isps: list[IspMeta]
    services: list[ServiceMeta]
    circumvention: list[str]
    probes: dict[str, Any]
    """The scenario's `probes` section as written (e.g. `degraded_below_kbps`)."""
    datapath: str
    netem: bool
    cloud_hosts: dict[str, str]
    expect: list[dict[str, Any]] = []
    populations: list[dict[str, Any]] = []
    """The scenario's `populations` (name, assumptions, source) for the report."""
    delays: dict[str, Any] | None = None
    """The scenario's link delays: applied or not and why, and every shaped link (filled in once
    the lab is up; tspulab.lab.linkshape)."""


# --- faults.jsonl: what failed during the run, and when ------------------------------------------


class FaultKind(StrEnum):
    """What failed: a fault the scenario injected (`faults:`), a signal that ended the run, or a
    part of the lab found dead or a timeline step that could not be applied."""

    KILL_CONTROLLER = "kill-controller"
    KILL_OVS = "kill-ovs"
    KILL_SERVICE = "kill-service"
    KILL_DNS = "kill-dns"
    FILL_DISK = "fill-disk"
    SIGTERM = "sigterm"
    SIGINT = "sigint"
    STEP_FAILED = "step-failed"
    WRITE_FAILED = "write-failed"
    """results.jsonl refused a line (a full disk): held in memory, or lost at the end."""


class FaultPhase(StrEnum):
    """Where a fault is in its life: injected, its effect observed on traffic, the component
    restored (restarted, space freed), traffic recovered; `failed` when an injection or a
    restore could not be done (the detail says why)."""

    INJECTED = "injected"
    OBSERVED = "observed"
    RESTORED = "restored"
    RECOVERED = "recovered"
    FAILED = "failed"


class FaultRecord(Contract):
    """One line of faults.jsonl, written the moment it happens (flushed and fsync'd)."""

    fault: FaultKind
    phase: FaultPhase
    target: str | None = None
    """The cloud of a killed nginx, the ISP of a failed registry update; None for the rest."""
    wall_time: float
    scenario_t_s: float | None = None
    """Scenario seconds when it happened (None before the timeline started)."""
    after_s: float | None = None
    """Real seconds since the fault was injected (observed, restored, recovered)."""
    detail: str
    """In words, e.g. "traffic through the TSPU stopped (fail-closed) after 0.4 s"."""
    measured: dict[str, float] = {}
    """Named figures: `stopped_after_s`, `flows_after_s`, `restart_s`, `recovered_after_s`."""

    def line(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def read_faults(path: Path) -> tuple[list[FaultRecord], list[str]]:
    """The records of a faults.jsonl (none when it is missing) and the problems of lines that are
    not records (a torn last line after a kill is skipped without a problem)."""
    if not path.exists():
        return [], []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records: list[FaultRecord] = []
    problems: list[str] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            if n != len(lines):
                problems.append(f"{path}:{n}: not JSON")
            continue
        try:
            records.append(FaultRecord.parse(raw, f"{path}:{n}"))
        except ContractError as err:
            problems.append(str(err))
    return records, problems
