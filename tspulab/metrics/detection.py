"""Who gets flagged as a VPN user: the TSPU's detect log joined with the ISPs' address data.

A TSPU in detect mode (profile vpn-detect-2025, docs/profiles.md) logs each recognised flow with
the subscriber-side address it saw (`detect` events in the controller's event log). The regulator
turns those into people with what the ISPs hand over (docs/tspu-behaviour.md §10.1): an address,
a municipality and the serving TSPU per subscriber. A run's ISP data lives in the data folder
under the scenario's name (`data/<name>/`):

- `subscribers.csv`: account, isp, host (the lab host), municipality, tspu, activity, vpn_user
  (yes/no: the ground truth the regulator does not have);
- `leases.csv`: isp, host, public_address, nat (cgnat, dynamic, static), from, until (UTC): the
  ISP's NAT and lease records;
- `submission-*.csv`: account, public_address, municipality, tspu: the one snapshot submitted.

Each detection is attributed three ways: **inside** (the address the TSPU saw identifies the host:
a TSPU next to the subscribers, before any NAT); **NAT log** (the public address at that moment,
resolved through the leases: every account behind a shared CGNAT address is a candidate);
**submission** (the public address looked up in the snapshot: an address since handed to someone
else names the wrong person). The confusion matrix compares the flagged accounts with the truth.
"""

from __future__ import annotations

import bisect
import csv
import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tspulab.contracts import EVENTS_FILE
from tspulab.metrics.results import read_results
from tspulab.metrics.timeline import parse_clock_start
from tspulab.scenario.build import plan_lab
from tspulab.scenario.paths import data_dir
from tspulab.scenario.schema import ScenarioError, load_scenario

MODES = ("inside", "NAT log", "submission")


class IspDataError(ValueError):
    """An ISP data file that cannot be read, with the file and line."""


@dataclass(frozen=True)
class Subscriber:
    account: str
    isp: str
    host: str
    municipality: str
    tspu: str
    activity: str
    vpn_user: bool


@dataclass(frozen=True)
class Lease:
    host: str
    public_address: str
    nat: str
    start: datetime
    end: datetime


@dataclass
class IspData:
    subscribers: dict[str, Subscriber]
    """host -> subscriber"""
    leases: list[Lease]
    submission: dict[str, list[str]]
    """public address -> accounts, as submitted"""
    submitted_on: str

    def public_address(self, host: str, at: datetime) -> Lease | None:
        return next((x for x in self.leases if x.host == host and x.start <= at < x.end), None)

    def behind(self, address: str, at: datetime) -> list[str]:
        """Hosts holding `address` at `at` (several behind a CGNAT address)."""
        return [
            x.host for x in self.leases if x.public_address == address and x.start <= at < x.end
        ]


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line and not line.startswith("#")]
    reader = csv.DictReader(line for _, line in numbered)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise IspDataError(f"{path}:{numbered[0][0] if numbered else 1}: missing columns {missing}")
    return [(numbered[i + 1][0], row) for i, row in enumerate(reader)]


def _time(path: Path, line: int, value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise IspDataError(f"{path}:{line}: not a time: {value!r}") from err


def load_isp_data(folder: Path) -> IspData | None:
    """The ISP data of a run, or None when the folder has none."""
    subs_file, leases_file = folder / "subscribers.csv", folder / "leases.csv"
    submissions = sorted(folder.glob("submission-*.csv"))
    if not (subs_file.is_file() and leases_file.is_file() and submissions):
        return None
    subscribers = {}
    for line, r in _rows(subs_file, ("account", "isp", "host", "activity", "vpn_user")):
        if r["vpn_user"] not in ("yes", "no"):
            raise IspDataError(f"{subs_file}:{line}: vpn_user must be yes or no")
        subscribers[r["host"]] = Subscriber(
            r["account"], r["isp"], r["host"], r.get("municipality", ""), r.get("tspu", ""),
            r["activity"], r["vpn_user"] == "yes",
        )  # fmt: skip
    leases = [
        Lease(
            r["host"],
            r["public_address"],
            r["nat"],
            _time(leases_file, n, r["from"]),
            _time(leases_file, n, r["until"]),
        )
        for n, r in _rows(leases_file, ("host", "public_address", "nat", "from", "until"))
    ]
    submission: dict[str, list[str]] = {}
    for _, r in _rows(submissions[-1], ("account", "public_address")):
        submission.setdefault(r["public_address"], []).append(r["account"])
    name = submissions[-1].stem.removeprefix("submission-")
    return IspData(subscribers, leases, submission, name)


@dataclass
class Detection:
    host: str | None
    protocol: str
    server: str
    server_port: int
    at: datetime | None
    method: str | None


def detections(
    events: list[dict[str, Any]],
    records: list[dict[str, Any]],
    host_of_address: dict[str, str],
    method_of_server: dict[tuple[str, int], str],
    clock_start: datetime | None,
) -> list[Detection]:
    """The detect events as detections: the host behind the address, the scenario instant (the
    probe round that made the flow: the latest probe started before the event), the method."""
    starts = sorted(
        (float(r["started"]), float(r.get("scenario_t_s") or 0.0))
        for r in records
        if r.get("started") and r.get("kind") in ("https", "http")
    )
    keys = [s for s, _ in starts]
    out = []
    for e in events:
        if e.get("event") != "detect":
            continue
        i = bisect.bisect_right(keys, float(e.get("t", 0.0))) - 1
        t_s = starts[i][1] if i >= 0 else 0.0
        at = clock_start + timedelta(seconds=t_s) if clock_start is not None else None
        server, port = str(e.get("server")), int(e.get("server_port") or 0)
        out.append(Detection(
            host_of_address.get(str(e.get("subscriber"))), str(e.get("protocol")), server, port,
            at, method_of_server.get((server, port)) or method_of_server.get((server, 0)),
        ))  # fmt: skip
    return out


@dataclass
class Verdicts:
    """Accounts flagged per mode, with why."""

    flagged: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: {m: {} for m in MODES}
    )  # mode -> account -> reasons

    def flag(self, mode: str, account: str, reason: str) -> None:
        self.flagged[mode].setdefault(account, set()).add(reason)


def attribute(found: list[Detection], data: IspData) -> Verdicts:
    """Flag accounts from detections, in each mode."""
    account_of = {h: s.account for h, s in data.subscribers.items()}
    v = Verdicts()
    for d in found:
        if d.host is None or d.host not in account_of:
            continue
        own = f"{d.protocol} from {d.host}"
        v.flag("inside", account_of[d.host], own)
        lease = data.public_address(d.host, d.at) if d.at is not None else None
        if lease is None or d.at is None:
            continue
        for host in data.behind(lease.public_address, d.at):
            why = own if host == d.host else f"shares {lease.public_address} with {d.host}"
            v.flag("NAT log", account_of[host], why)
        for account in data.submission.get(lease.public_address, []):
            mine = account == account_of[d.host]
            why = own if mine else f"{lease.public_address} was {d.host}'s at the time"
            v.flag("submission", account, why)
    return v


def confusion(v: Verdicts, data: IspData, mode: str) -> dict[str, int]:
    flagged = v.flagged[mode]
    out = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for s in data.subscribers.values():
        hit = s.account in flagged
        out[("t" if hit == s.vpn_user else "f") + ("p" if hit else "n")] += 1
    return out


def detection_html(
    found: list[Detection],
    data: IspData | None,
    probes_through: dict[str, tuple[int, set[str]]],
    kinds: dict[str, str],
) -> str:
    """The report section: per tool, then (with ISP data) per subscriber and the matrices.
    `probes_through`: method -> (probes made, hosts that used it); `kinds`: method -> kind."""
    e = html.escape
    out = ["<h2>Detection: who is flagged as a VPN user</h2>"]
    out.append(
        '<p class="note">The TSPU logs each recognised flow once, at its start (detect mode). '
        "Per tool: flows its users made through it (one per probe; a reconnecting tunnel counts "
        "again) and the detections logged towards its server.</p>"
    )
    rows = ["<tr><th>tool</th><th>kind</th><th>users</th><th>probes through it</th>"
            "<th>detections</th><th>detected as</th></tr>"]  # fmt: skip
    for m in sorted(probes_through):
        made, hosts = probes_through[m]
        mine = [d for d in found if d.method == m]
        protos = sorted({d.protocol for d in mine})
        rows.append(
            f"<tr><td>{e(m)}</td><td>{e(kinds.get(m, '?'))}</td><td>{e(', '.join(sorted(hosts)))}"
            f'</td><td>{made}</td><td class="{"bad" if mine else "good"}">{len(mine)}</td>'
            f"<td>{e(', '.join(protos) or 'not detected')}</td></tr>"
        )
    out.append(f"<div class='scroll'><table class='num'>{''.join(rows)}</table></div>")
    if data is None:
        out.append('<p class="note">No ISP address data for this scenario (data/NAME/): '
                   "detections are not attributed to accounts.</p>")  # fmt: skip
        return "\n".join(out)
    v = attribute(found, data)
    out.append(
        f'<p class="note">Attribution: <b>inside</b> = the address the TSPU saw names the host; '
        f"<b>NAT log</b> = the public address at that moment, resolved through the ISP's lease "
        f"and NAT records (all accounts behind a shared address); <b>submission</b> = the public "
        f"address looked up in the ISP's snapshot of {e(data.submitted_on)}.</p>"
    )
    head = "".join(f"<th>{m}</th>" for m in MODES)
    rows = [f"<tr><th>account</th><th>host</th><th>activity</th><th>VPN user</th>{head}</tr>"]
    for s in sorted(data.subscribers.values(), key=lambda x: x.account):
        cells = []
        for m in MODES:
            why = v.flagged[m].get(s.account)
            right = bool(why) == s.vpn_user
            mark = "flagged" if why else "not flagged"
            cls = "good" if right else "bad"
            cells.append(f'<td class="{cls}">{mark}<br><span class="note">'
                         f"{e('; '.join(sorted(why or [])))}</span></td>")  # fmt: skip
        rows.append(
            f"<tr><td>{e(s.account)}</td><td>{e(s.host)}</td><td>{e(s.activity)}</td>"
            f"<td>{'yes' if s.vpn_user else 'no'}</td>{''.join(cells)}</tr>"
        )
    out.append(f"<div class='scroll'><table class='num'>{''.join(rows)}</table></div>")
    rows = [
        "<tr><th>attribution</th><th>VPN users found</th><th>VPN users missed</th>"
        "<th>non-users flagged</th><th>non-users clear</th><th>precision</th></tr>"
    ]
    for m in MODES:
        c = confusion(v, data, m)
        flagged = c["tp"] + c["fp"]
        precision = f"{c['tp'] / flagged:.0%}" if flagged else "–"
        rows.append(
            f"<tr><td>{m}</td><td>{c['tp']}</td><td>{c['fn']}</td>"
            f'<td class="{"bad" if c["fp"] else "good"}">{c["fp"]}</td><td>{c["tn"]}</td>'
            f"<td>{precision}</td></tr>"
        )
    out.append(f"<div class='scroll'><table class='num'>{''.join(rows)}</table></div>")
    return "\n".join(out)


def section_for_run(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The detection section of a run: "" when its TSPUs logged no detection and the scenario
    has no ISP data; the scenario file (run.json's `scenario`) gives the hosts' addresses and
    the methods' servers."""
    events = [x for x in read_results(run_dir / EVENTS_FILE) if x.get("event") == "detect"]
    name = str(meta.get("name") or "")
    folder = data_dir() / name if name else None
    try:
        data = load_isp_data(folder) if folder is not None and folder.is_dir() else None
    except IspDataError as err:
        return f'<h2>Detection</h2><p class="note">ISP data not usable: {html.escape(str(err))}</p>'
    if not events and data is None:
        return ""
    try:
        scenario = load_scenario(str(meta.get("scenario")))
    except (ScenarioError, OSError) as err:
        return (f'<h2>Detection</h2><p class="note">{len(events)} detections; the scenario file '
                f"could not be read to attribute them: {html.escape(str(err))}</p>")  # fmt: skip
    plan = plan_lab(scenario)
    host_of_address = {a: h for h, a in plan.address_of_host.items()}
    servers = {(str(m.address), int(m.port or 0)): m.name for m in scenario.circumvention}
    kinds = {m.name: str(m.kind) for m in scenario.circumvention}
    found = detections(
        events, records, host_of_address, servers, parse_clock_start(meta.get("clock_start"))
    )
    through: dict[str, tuple[int, set[str]]] = {}
    for r in records:
        m = r.get("method")
        if r.get("kind") in ("https", "http") and m and m != "direct":
            made, hosts = through.get(str(m), (0, set()))
            through[str(m)] = (made + 1, hosts | {str(r.get("subscriber"))})
    return detection_html(found, data, through, kinds)
