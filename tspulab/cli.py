"""`tspulab` command line: run, shell, clean, validate, replay, matrix, merge.

Each subcommand is a small function that parses its arguments and hands over to the layer that
owns the work, so the CLI stays thin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="bring up the lab of a scenario, run its probes, write a report")
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--runs-dir", default="runs", help="where run directories are made")
    p.add_argument(
        "--capture",
        action="store_true",
        help="record every TSPU's subscriber-side port (for `tspulab parity`)",
    )
    p.add_argument(
        "--no-delays",
        action="store_true",
        help="run a scenario with links: without its delays where this kernel has no netem",
    )
    p.add_argument(
        "--allow-commands",
        action="store_true",
        help="let kind: custom methods run the commands the scenario names (as root, in the lab)",
    )
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from tspulab.scenario.runner import run_scenario_cli

    return run_scenario_cli(
        args.scenario, args.runs_dir, capture=args.capture, no_delays=args.no_delays,
        allow_commands=args.allow_commands,
    )  # fmt: skip


def _add_shell(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "shell", help="bring up a scenario's lab and stand inside it (an interactive shell)"
    )
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--runs-dir", default="runs", help="where run directories are made")
    p.add_argument(
        "--no-delays",
        action="store_true",
        help="run a scenario with links: without its delays where this kernel has no netem",
    )
    p.set_defaults(handler=_cmd_shell)


def _cmd_shell(args: argparse.Namespace) -> int:
    from tspulab.shell.session import shell_cli

    return shell_cli(args.scenario, args.runs_dir, no_delays=args.no_delays)


def _add_parity(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "parity", help="compare a captured run's live verdicts with a replay of its capture"
    )
    p.add_argument("run_dir")
    p.set_defaults(handler=_cmd_parity)


def _cmd_parity(args: argparse.Namespace) -> int:
    from tspulab.parity import parity_cli

    return parity_cli(args.run_dir)


def _add_clean(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "clean",
        help="remove what earlier runs made (by recorded name and PID), e.g. after a SIGKILL",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("run", nargs="*", help="run directories to clean (default: every unclean one)")
    p.set_defaults(handler=_cmd_clean)


def _cmd_clean(args: argparse.Namespace) -> int:
    from tspulab.lab.record import clean_runs

    return clean_runs(args.runs_dir, args.run)


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check scenario files; errors give file:line:col: field")
    p.add_argument("scenario", nargs="+")
    p.set_defaults(handler=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    from tspulab.scenario.check_context import path_notes
    from tspulab.scenario.schema import ScenarioError, load_scenario

    status = 0
    for path in args.scenario:
        try:
            scenario = load_scenario(path)
        except ScenarioError as err:
            print(err, file=sys.stderr)
            status = 1
        else:
            print(f"{path}: ok")
            for note in path_notes(scenario):  # files read from outside the scenario's folder
                print(f"{path}: note: {note}")
    return status


def _add_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files (for editors)")
    p.set_defaults(handler=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from tspulab.scenario.schema import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="classify every flow of a pcap/pcapng with the DPI core")
    p.add_argument("capture", help="pcap or pcapng file")
    p.add_argument("--reassembly", choices=("none", "tcp", "tls-records"), default="none")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument(
        "--subscriber-net", action="append", default=[], metavar="CIDR",
        help="a subscriber (inside) network; repeatable",
    )  # fmt: skip
    p.add_argument("--tor-relays", metavar="FILE", help="Tor relay address list, one per line")
    p.add_argument(
        "--profile", metavar="NAME",
        help="judge flows with a behaviour profile (name or YAML path) and print verdicts",
    )  # fmt: skip
    p.add_argument(
        "--registry", action="append", default=[], metavar="FILE",
        help="block registry list file (one IP, prefix or domain a line); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--registry-inline", action="append", default=[], metavar="ENTRY",
        help="one registry entry (IP, prefix or domain pattern); repeatable",
    )  # fmt: skip
    p.set_defaults(handler=_cmd_replay)


def _cmd_replay(args: argparse.Namespace) -> int:
    from tspulab.replay import run_replay_cli

    return run_replay_cli(
        args.capture, args.reassembly, args.json, args.subscriber_net, args.tor_relays,
        args.profile, args.registry, args.registry_inline,
    )  # fmt: skip


def _add_strategies(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tspulab.strategies.command import add_arguments, run_strategies_cli

    p = sub.add_parser(
        "strategies", help="sweep evasion strategies against profiles (docs/strategies.md)"
    )
    add_arguments(p)
    p.set_defaults(handler=run_strategies_cli)


def _add_matrix(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tspulab.matrix.command import add_matrix_arguments, matrix_cli

    p = sub.add_parser(
        "matrix", help="circumvention tools x profiles x trials in parallel labs (docs/matrix.md)"
    )
    add_matrix_arguments(p)
    p.set_defaults(handler=matrix_cli)


def _add_merge(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tspulab.matrix.command import add_merge_arguments, merge_cli

    p = sub.add_parser("merge", help="join the shards of a matrix into one report")
    add_merge_arguments(p)
    p.set_defaults(handler=merge_cli)


COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_run,
    _add_shell,
    _add_clean,
    _add_validate,
    _add_parity,
    _add_schema,
    _add_replay,
    _add_strategies,
    _add_matrix,
    _add_merge,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tspulab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
