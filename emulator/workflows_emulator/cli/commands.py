"""The ``workflows ...`` commands, each one API call or a few plus its text, and `main`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import EmulatorError
from ..events import STATUSES
from .client import Call, CliError, run_command
from .parser import build_parser
from .render import (
    json_text,
    render_doctor,
    render_instance,
    render_instances,
    render_triggered,
    render_workflow,
    render_workflows,
)

CommandFn = Callable[[argparse.Namespace, Call], Awaitable[None]]
ACTION_VERBS = {"terminate": ("🥷", "terminated"), "pause": ("⏸️", "paused"),
                "resume": ("🔄", "resumed"), "restart": ("🥷", "restarted")}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    Each command's module is imported when that command runs, so ``workflows instances
    describe`` starts without the dev server, the bindings or the porting kit.
    """
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    try:
        return _run(args)
    except (CliError, EmulatorError) as exc:
        print(f"✘ [ERROR] {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "dev":
        import asyncio

        from ..devserver.server import run_dev  # aiohttp loads only for `dev`
        from ..project import load_project

        project = load_project(args.config)
        return asyncio.run(run_dev(project, Path(args.persist_to), args.ip, args.port,
                                   args.doubles, virtual_clock=args.virtual_clock))
    if args.command == "doctor":
        return _doctor(args)
    if args.command in ("kv", "r2"):
        from .store_commands import run_store_command

        return run_store_command(args)
    if args.command == "d1":
        from .d1_commands import run_d1

        return run_d1(args)
    if args.command == "replay":
        from .replay_command import run_replay

        return run_replay(args)
    if args.command == "time":
        from .time_commands import run_time

        return run_time(args)
    if args.command == "compare":
        from .compare_command import run_compare

        return run_compare(args)
    read_only = (args.isub if args.sub == "instances" else args.sub) in ("list", "describe")
    return run_command(args, lambda call: _workflows(args, call), read_only=read_only)


def _doctor(args: argparse.Namespace) -> int:
    """Report unreadable state files (exit 1 if any is left); --quarantine sets them aside."""
    from ..state_doctor import Finding, examine, quarantine
    from ..state_lock import StateLock, holder

    state = Path(args.persist_to)
    if not state.is_dir():
        raise CliError(f"{state} is not a state directory (pass --persist-to)")
    findings = examine(state)
    moved: list[tuple[Finding, Path]] = []
    if findings and args.quarantine:
        with StateLock.acquire(state):
            moved = quarantine(state, examine(state))  # examined again under the lock
        findings = examine(state)
    held = holder(state)
    if args.json:
        print(json.dumps({"driven_by": held.describe() if held else None,
                          "quarantined": [{**f.to_json(), "moved_to": str(p)} for f, p in moved],
                          "problems": [f.to_json() for f in findings]}, indent=2))
    else:
        print(render_doctor(state, held.describe() if held else None, moved, findings))
    return 1 if findings else 0


async def _workflows(args: argparse.Namespace, call: Call) -> int:
    if args.sub == "instances":
        await INSTANCE_COMMANDS.get(args.isub, _act_on_instance)(args, call)
    else:
        await WORKFLOW_COMMANDS[args.sub](args, call)
    return 0


def _out(args: argparse.Namespace, result: Any, text: str) -> None:
    print(json_text(result) if args.json else text)


def _path(name: str, *rest: str) -> str:
    return "/workflows/" + "/".join(quote(p, safe="") for p in (name, *rest))


def _parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f'Error while parsing {what}: "{text}" with {exc}') from exc


# -- workflows ---------------------------------------------------------------------------------


async def _list_workflows(args: argparse.Namespace, call: Call) -> None:
    rows = await call("GET", "/workflows", None)
    _out(args, rows, render_workflows(rows))


async def _describe_workflow(args: argparse.Namespace, call: Call) -> None:
    r = await call("GET", _path(args.name), None)
    _out(args, r, render_workflow(r))


async def _delete_workflow(args: argparse.Namespace, call: Call) -> None:
    r = await call("DELETE", _path(args.name), None)
    _out(args, r, f'✅ Workflow "{args.name}" removed successfully: deleted '
                  f"{len(r['deleted'])} instance(s)")


async def _trigger(args: argparse.Namespace, call: Call) -> None:
    import uuid

    params = _parse_json_arg(args.params, "instance parameters") if args.params else {}
    r = await call("POST", _path(args.name, "instances"),
                   {"id": args.id or str(uuid.uuid4()), "params": params})
    _out(args, r, render_triggered(r))


# -- instances ---------------------------------------------------------------------------------


async def _list_instances(args: argparse.Namespace, call: Call) -> None:
    if args.status is not None and args.status not in STATUSES[:-1]:
        raise CliError(f'Looks like you have provided a invalid status "{args.status}". '
                       f"Valid statuses are: {', '.join(STATUSES[:-1])}")
    query = f"?status={quote(args.status)}" if args.status else ""
    rows = await call("GET", _path(args.name, "instances") + query, None)
    rows = rows[::-1] if not args.reverse else rows
    start = (args.page - 1) * args.per_page
    rows = rows[start : start + args.per_page]
    _out(args, rows, render_instances(rows, args.name))


async def _describe_instance(args: argparse.Namespace, call: Call) -> None:
    r = await call("GET", _path(args.name, "instances", args.id), None)
    if args.json:  # a large instance's text view is not built only to be thrown away
        _out(args, r, "")
    else:
        print(render_instance(r, step_output=args.step_output, limit=args.truncate_output_limit))


async def _delete_instances(args: argparse.Namespace, call: Call) -> None:
    ids = list(args.ids)
    if args.filename:
        ids += _parse_json_arg(Path(args.filename).read_text(), args.filename)
    if not ids or len(ids) > 100:
        raise CliError("give 1 to 100 instance ids (arguments or --filename)")
    deleted = [(await call("DELETE", _path(args.name, "instances", i), None))["id"] for i in ids]
    _out(args, {"deleted": deleted},
         f'🗑️  Deleted workflow instances from "{args.name}": {", ".join(deleted)}')


async def _send_event(args: argparse.Namespace, call: Call) -> None:
    payload = _parse_json_arg(args.payload, "event payload")
    target = _path(args.name, "instances", args.id, "events", args.type)
    r = await call("POST", target, payload)
    shown = f' and payload "{args.payload}"' if args.payload != "{}" else ""
    _out(args, r, f'📤 The event with type "{args.type}"{shown} was sent to the instance '
                  f'"{args.id}" from {args.name}')


async def _act_on_instance(args: argparse.Namespace, call: Call) -> None:
    """terminate, pause, resume or restart."""
    sub = args.isub
    body: dict[str, Any] = {"action": sub}
    if sub == "terminate" and args.rollback:
        body["rollback"] = True
    if sub == "restart":
        body.update(_restart_from(args))
    r = await call("PATCH", _path(args.name, "instances", args.id), body)
    icon, verb = ACTION_VERBS[sub]
    _out(args, r, f'{icon} The instance "{args.id}" from {args.name} was {verb} successfully'
                  f"\n   Status: {r['status']}")


def _restart_from(args: argparse.Namespace) -> dict[str, Any]:
    if (args.from_step_count is not None or args.from_step_type) and not args.from_step_name:
        raise CliError("--from-step-name is required when using --from-step-count or "
                       "--from-step-type")
    if args.from_step_count is not None and args.from_step_count < 1:
        raise CliError("--from-step-count must be a positive integer")
    if not args.from_step_name:
        return {}
    return {"from": {"name": args.from_step_name, "count": args.from_step_count or 1,
                     "type": args.from_step_type or "do"}}


WORKFLOW_COMMANDS: dict[str, CommandFn] = {
    "list": _list_workflows, "describe": _describe_workflow, "delete": _delete_workflow,
    "trigger": _trigger,
}
INSTANCE_COMMANDS: dict[str, CommandFn] = {
    "list": _list_instances, "describe": _describe_instance, "delete": _delete_instances,
    "send-event": _send_event,
}
