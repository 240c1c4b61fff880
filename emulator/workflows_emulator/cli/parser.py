"""The CLI's argparse command tree: ``dev`` and ``workflows ...`` shaped like ``wrangler workflows``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TypeAlias

DEFAULT_STATE = ".workflows-emulator"
DOUBLES_HELP = ("a Python file whose make_doubles(project) returns test doubles for "
                "bindings (default: emulator_doubles.py beside the wrangler file, if any)")
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command tree; given the ``argv`` it is to parse, only what parsing it needs.

    When ``argv`` starts with a command's name, only that command's subtree is built (and
    only its module imported: `d1_commands` loads the D1 binding, `compare_command` the
    porting kit...); the parse and its errors are the same as the whole tree's. Anything
    else (``--help``, no command, a wrong one) gets the whole tree, which lists them all.
    """
    root = argparse.ArgumentParser(prog="workflows-emulator",
                                   description="Run Python Workers and Workflows offline.")
    top = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = argv[0] if argv else None
    for names, add in _COMMANDS:
        if named not in _NAMES or named in names:
            add(top)
    return root


def _add_dev(top: Subparsers) -> None:
    dev = top.add_parser("dev", help="serve the project's fetch handler and run its workflows")
    dev.add_argument("-c", "--config", help="wrangler.toml / wrangler.jsonc")
    dev.add_argument("--ip", default="127.0.0.1")
    dev.add_argument("--port", type=port_number, default=8787)
    dev.add_argument("--persist-to", default=DEFAULT_STATE)
    dev.add_argument("--doubles", metavar="FILE", help=DOUBLES_HELP)
    dev.add_argument("--virtual-clock", action="store_true", help="run on a clock that moves "
                     "only with `workflows-emulator time advance` (jump over sleeps and delays)")


def _add_doctor(top: Subparsers) -> None:
    doctor = top.add_parser(
        "doctor", help="find state files that cannot be read; --quarantine sets them aside")
    doctor.add_argument("--persist-to", default=DEFAULT_STATE,
                        help=f"the state directory (default {DEFAULT_STATE})")
    doctor.add_argument("--quarantine", action="store_true",
                        help="move damaged files into <state>/quarantine/ (takes the lock)")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")


def _add_workflows(top: Subparsers) -> None:
    shared = _shared()
    wf = top.add_parser("workflows", help="manage workflows and instances (as wrangler)")
    wsub = wf.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    _add_workflow_commands(wsub, shared)
    inst = wsub.add_parser("instances", help="manage instances")
    isub = inst.add_subparsers(dest="isub", required=True, metavar="SUBCOMMAND")
    _add_instance_queries(isub, shared)
    _add_instance_actions(isub, shared)


def _add_stores(top: Subparsers) -> None:
    from .store_commands import add_store_commands  # here: store_commands imports this module

    add_store_commands(top)


def _add_d1(top: Subparsers) -> None:
    from .d1_commands import add_d1_parser

    add_d1_parser(top, DEFAULT_STATE)


def _add_replay(top: Subparsers) -> None:
    from .replay_command import add_replay_parser

    add_replay_parser(top, DEFAULT_STATE)


def _add_time(top: Subparsers) -> None:
    from .time_commands import add_time_parser

    add_time_parser(top, DEFAULT_STATE)


def _add_compare(top: Subparsers) -> None:
    from .compare_command import add_compare_parser

    add_compare_parser(top)


# Each top-level command, the names it adds, in the order ``--help`` lists them.
_COMMANDS: tuple[tuple[tuple[str, ...], Callable[[Subparsers], None]], ...] = (
    (("dev",), _add_dev), (("doctor",), _add_doctor), (("workflows",), _add_workflows),
    (("kv", "r2"), _add_stores), (("d1",), _add_d1), (("replay",), _add_replay),
    (("time",), _add_time), (("compare",), _add_compare),
)
_NAMES = frozenset(name for names, _ in _COMMANDS for name in names)


def port_number(text: str) -> int:
    """A ``--port`` value: 1-65535, or 0 for any free port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range: a port is 1-65535 (0 picks "
                                         "a free one)")
    return port


def _shared() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("where instances live")
    g.add_argument("-c", "--config", help="the project's wrangler.toml / wrangler.jsonc "
                   "(default: the one in the current folder)")
    g.add_argument("--persist-to", default=DEFAULT_STATE,
                   help=f"the state directory (default {DEFAULT_STATE})")
    g.add_argument("--local", action="store_true",
                   help="talk to a running `workflows-emulator dev` on --ip/--port")
    g.add_argument("--ip", default="127.0.0.1", help="the dev server's address (with --local)")
    g.add_argument("--port", type=port_number, default=8787,
                   help="the dev server's port (with --local)")
    g.add_argument("--timers-within", type=float, default=60.0, metavar="SECONDS",
                   help="without a dev server, keep driving the instance through timers due "
                   "within SECONDS (retry delays, short sleeps) before returning (default 60)")
    g.add_argument("--doubles", metavar="FILE", help=DOUBLES_HELP)
    p.add_argument("--json", action="store_true", help="Output the raw API response as JSON")
    return p


def _add_workflow_commands(wsub: Subparsers, shared: argparse.ArgumentParser) -> None:
    p = wsub.add_parser("list", parents=[shared], help="list workflows")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--per-page", type=int)
    wsub.add_parser("describe", parents=[shared], help="describe a workflow").add_argument("name")
    wsub.add_parser("delete", parents=[shared],
                    help="delete a workflow's instances").add_argument("name")
    p = wsub.add_parser("trigger", parents=[shared], help="create an instance")
    p.add_argument("name")
    p.add_argument("params", nargs="?", default="")
    p.add_argument("--id")


def _add_instance_queries(isub: Subparsers, shared: argparse.ArgumentParser) -> None:
    p = isub.add_parser("list", parents=[shared], help="list instances")
    p.add_argument("name")
    p.add_argument("--status")
    p.add_argument("--reverse", action="store_true")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--per-page", type=int, default=50)
    p = isub.add_parser("describe", parents=[shared], help="steps, attempts and rollback")
    p.add_argument("name")
    p.add_argument("id", nargs="?", default="latest")
    p.add_argument("--step-output", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--truncate-output-limit", type=int, default=5000)


def _add_instance_actions(isub: Subparsers, shared: argparse.ArgumentParser) -> None:
    p = isub.add_parser("send-event", parents=[shared], help="send an event")
    p.add_argument("name")
    p.add_argument("id")
    p.add_argument("--type", required=True)
    p.add_argument("--payload", default="{}")
    p = isub.add_parser("terminate", parents=[shared], help="terminate an instance")
    p.add_argument("name")
    p.add_argument("id")
    p.add_argument("--rollback", action="store_true",
                   help="Run registered rollback handlers before terminating")
    for action in ("pause", "resume"):
        p = isub.add_parser(action, parents=[shared], help=f"{action} an instance")
        p.add_argument("name")
        p.add_argument("id")
    p = isub.add_parser("restart", parents=[shared], help="restart an instance")
    p.add_argument("name")
    p.add_argument("id")
    p.add_argument("--from-step-name")
    p.add_argument("--from-step-count", type=int)
    p.add_argument("--from-step-type", choices=("do", "sleep", "waitForEvent"))
    p = isub.add_parser("delete", parents=[shared], help="delete instances")
    p.add_argument("name")
    p.add_argument("ids", nargs="*")
    p.add_argument("--filename", help="a JSON file holding an array of instance ids")
