"""``workflows-emulator time ...``: read or move the clock of a running ``dev --virtual-clock``.

    time advance 2h       jump over sleeps, retry delays and event timeouts due within 2 hours
    time show             which clock the dev server runs on, and its time

Both talk to the dev server driving ``--persist-to`` (or, with ``--local``, the one on
``--ip``/``--port``) through ``/__workflows/api/time``; without a running server there is no
clock to move, so they say how to start one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from ..state_lock import running_server
from .client import CliError, _http_call

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_time_parser(top: Subparsers, default_state: str) -> None:
    """Add the ``time`` command group to the CLI's top-level subparsers."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--persist-to", default=default_state,
                        help=f"the state directory the dev server drives (default {default_state})")
    shared.add_argument("--local", action="store_true",
                        help="talk to the dev server on --ip/--port instead")
    shared.add_argument("--ip", default="127.0.0.1", help="the dev server's address (with --local)")
    shared.add_argument("--port", type=int, default=8787, help="the dev server's port (with --local)")
    shared.add_argument("--json", action="store_true", help="print the API's result as JSON")
    group = top.add_parser("time", help="move the clock of `dev --virtual-clock` (time travel)")
    sub = group.add_subparsers(dest="time_command", required=True, metavar="SUBCOMMAND")
    advance = sub.add_parser("advance", parents=[shared],
                             help="jump ahead, firing the sleeps, retry delays and event "
                                  "timeouts due meanwhile")
    advance.add_argument("duration", help='how far: 2h, 15m, 90s, 1d, 500ms, "3 hours", or '
                                          "milliseconds")
    sub.add_parser("show", parents=[shared], help="print the dev server's clock")


def run_time(args: argparse.Namespace) -> int:
    """Run ``time advance`` or ``time show`` against the dev server."""
    state = Path(args.persist_to)
    base = f"http://{args.ip}:{args.port}" if args.local else running_server(state)
    if base is None:
        raise CliError(f"no dev server is driving {state}: start one with `workflows-emulator "
                       "dev --virtual-clock` (pass the same --persist-to), or point at one "
                       "with --local --port N")
    call = _http_call(base)

    async def ask(method: str, path: str, body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await call(method, path, body)
        return result

    if args.time_command == "advance":
        result = asyncio.run(ask("POST", "/time/advance", {"by": args.duration}))
        text = (f"⏩ Advanced the virtual clock by {args.duration} "
                f"({result['advanced_ms'] / 1000:g} s): it is now {_when(result)}")
    else:
        result = asyncio.run(ask("GET", "/time", None))
        kind = "virtual" if result["virtual"] else "real"
        text = f"🕒 The dev server at {base} runs on the {kind} clock: it is {_when(result)}"
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


def _when(clock: dict[str, Any]) -> str:
    return datetime.fromtimestamp(clock["now"] / 1000, UTC).isoformat(timespec="seconds")
