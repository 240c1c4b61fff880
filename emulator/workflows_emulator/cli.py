"""``workflows-emulator``: ``dev``, and ``workflows ...`` shaped like ``wrangler workflows``.

Commands work on a state directory (``--persist-to DIR --config wrangler.toml``) or, with
``--local`` (or automatically when a dev server holds DIR), on a running dev server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .devserver import API_PREFIX, InstanceApi, run_dev, running_server
from .errors import EmulatorError
from .events import STATUSES
from .project import load_project, open_runtime_sync

DEFAULT_STATE = ".workflows-emulator"
Call = Callable[[str, str, Any], Awaitable[Any]]
Command = Callable[[Call], Coroutine[Any, Any, int]]


class CliError(Exception):
    """A command failed; the message is printed as ``✘ [ERROR] ...``."""


# -- argument parsing ------------------------------------------------------------------------


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
    g.add_argument("--port", type=int, default=8787, help="the dev server's port (with --local)")
    p.add_argument("--json", action="store_true", help="Output the raw API response as JSON")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    shared = _shared()
    root = argparse.ArgumentParser(prog="workflows-emulator",
                                   description="Run Python Workers and Workflows offline.")
    top = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = top.add_parser("dev", help="serve the project's fetch handler and run its workflows")
    dev.add_argument("-c", "--config", help="wrangler.toml / wrangler.jsonc")
    dev.add_argument("--ip", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8787)
    dev.add_argument("--persist-to", default=DEFAULT_STATE)

    wf = top.add_parser("workflows", help="manage workflows and instances (as wrangler)")
    wsub = wf.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
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

    inst = wsub.add_parser("instances", help="manage instances")
    isub = inst.add_subparsers(dest="isub", required=True, metavar="SUBCOMMAND")
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
    return root


# -- transports --------------------------------------------------------------------------------


def _http_call(base: str) -> Call:
    async def call(method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + API_PREFIX + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
        except urllib.error.URLError as exc:
            raise CliError(
                f"cannot reach the dev server at {base}: {exc.reason}; start it with "
                "`workflows-emulator dev`, or drop --local to work on --persist-to directly"
            ) from exc
        return _unwrap(answer)

    return call


def _unwrap(answer: dict[str, Any]) -> Any:
    if not answer.get("success"):
        errors = answer.get("errors") or [{"message": "unknown error"}]
        raise CliError("; ".join(e.get("message", "") for e in errors))
    return answer["result"]


def _run(args: argparse.Namespace, command: Command) -> int:
    state = Path(args.persist_to)
    base = f"http://{args.ip}:{args.port}" if args.local else running_server(state)
    if base is not None:
        return asyncio.run(command(_http_call(base)))
    project = load_project(args.config)
    with open_runtime_sync(project, state, clock="real") as rt:
        api = InstanceApi(rt, foreground=True)

        async def session() -> int:
            async def call(method: str, path: str, body: Any = None) -> Any:
                return _unwrap((await api.handle(method, path, body)).body)

            try:
                return await command(call)
            finally:
                await rt.emulator.close()

        return asyncio.run(session())


# -- commands ------------------------------------------------------------------------------


def _out(args: argparse.Namespace, result: Any, text: str) -> None:
    print(json.dumps(result, indent=2, default=str) if args.json else text)


def _path(name: str, *rest: str) -> str:
    return "/workflows/" + "/".join(quote(p, safe="") for p in (name, *rest))


def _parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f'Error while parsing {what}: "{text}" with {exc}') from exc


async def _workflows(args: argparse.Namespace, call: Call) -> int:
    sub = args.sub
    if sub == "list":
        rows = await call("GET", "/workflows", None)
        table = render_table(["Name", "Binding", "Class Name", "Instances"], [
            [r["name"], r["binding"], r["class_name"], str(sum(r["instances"].values()))]
            for r in rows])
        _out(args, rows, table if rows else "No workflows in this project.")
    elif sub == "describe":
        r = await call("GET", _path(args.name), None)
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(r["instances"].items())) or "none"
        _out(args, r, f"Name:         {r['name']}\nBinding:      {r['binding']}\n"
                      f"Script Name:  {r['script_name']}\nClass Name:   {r['class_name']}\n"
                      f"Instances:    {counts}")
    elif sub == "delete":
        r = await call("DELETE", _path(args.name), None)
        _out(args, r, f'✅ Workflow "{args.name}" removed successfully: deleted '
                      f"{len(r['deleted'])} instance(s)")
    elif sub == "trigger":
        params = _parse_json_arg(args.params, "instance parameters") if args.params else {}
        r = await call("POST", _path(args.name, "instances"),
                       {"id": args.id or str(uuid.uuid4()), "params": params})
        text = f'🚀 Workflow instance "{r["id"]}" has been triggered successfully'
        if r["status"] != "queued":
            text += f"\n   Status: {r['status']}"
            if r.get("error"):
                text += f"\n   Error:  {r['error'].get('name')}: {r['error'].get('message')}"
            if r.get("rollback"):
                text += f"\n   Rollback: {r['rollback'].get('outcome')}"
        _out(args, r, text)
    else:
        return await _instances(args, call)
    return 0


async def _instances(args: argparse.Namespace, call: Call) -> int:
    sub, name = args.isub, args.name
    if sub == "list":
        if args.status is not None and args.status not in STATUSES[:-1]:
            raise CliError(f'Looks like you have provided a invalid status "{args.status}". '
                           f"Valid statuses are: {', '.join(STATUSES[:-1])}")
        query = f"?status={quote(args.status)}" if args.status else ""
        rows = await call("GET", _path(name, "instances") + query, None)
        rows = rows[::-1] if not args.reverse else rows
        start = (args.page - 1) * args.per_page
        rows = rows[start : start + args.per_page]
        table = render_table(["Instance ID", "Created", "Status"],
                             [[r["id"], fmt_time(r["created"]), r["status"]] for r in rows])
        _out(args, rows, table if rows else f'There are no instances in workflow "{name}"')
        return 0
    if sub == "describe":
        r = await call("GET", _path(name, "instances", args.id), None)
        _out(args, r, render_instance(r, step_output=args.step_output,
                                      limit=args.truncate_output_limit))
        return 0
    if sub == "delete":
        ids = list(args.ids)
        if args.filename:
            ids += _parse_json_arg(Path(args.filename).read_text(), args.filename)
        if not ids or len(ids) > 100:
            raise CliError("give 1 to 100 instance ids (arguments or --filename)")
        deleted = [(await call("DELETE", _path(name, "instances", i), None))["id"] for i in ids]
        _out(args, {"deleted": deleted},
             f'🗑️  Deleted workflow instances from "{name}": {", ".join(deleted)}')
        return 0
    target = _path(name, "instances", args.id)
    if sub == "send-event":
        payload = _parse_json_arg(args.payload, "event payload")
        r = await call("POST", target + "/events/" + quote(args.type, safe=""), payload)
        shown = f' and payload "{args.payload}"' if args.payload != "{}" else ""
        _out(args, r, f'📤 The event with type "{args.type}"{shown} was sent to the instance '
                      f'"{args.id}" from {name}')
        return 0
    body: dict[str, Any] = {"action": sub}
    if sub == "terminate" and args.rollback:
        body["rollback"] = True
    if sub == "restart":
        if (args.from_step_count is not None or args.from_step_type) and not args.from_step_name:
            raise CliError("--from-step-name is required when using --from-step-count or "
                           "--from-step-type")
        if args.from_step_count is not None and args.from_step_count < 1:
            raise CliError("--from-step-count must be a positive integer")
        if args.from_step_name:
            body["from"] = {"name": args.from_step_name, "count": args.from_step_count or 1,
                            "type": args.from_step_type or "do"}
    r = await call("PATCH", target, body)
    verb = {"terminate": ("🥷", "terminated"), "pause": ("⏸️", "paused"),
            "resume": ("🔄", "resumed"), "restart": ("🥷", "restarted")}[sub]
    _out(args, r, f'{verb[0]} The instance "{args.id}" from {name} was {verb[1]} successfully'
                  f"\n   Status: {r['status']}")
    return 0


# -- rendering ------------------------------------------------------------------------------

STATUS_LABELS = {
    "complete": "✅ Completed", "errored": "❌ Errored", "paused": "⏸️ Paused",
    "queued": "⌛ Queued", "running": "▶ Running", "terminated": "🚫 Terminated",
    "waiting": "⏰ Waiting", "waitingForPause": "⏱️ Waiting for Pause",
}
STEP_TYPES = {"do": "🎯 Step", "sleep": "💤 Sleeping", "wait": "👀 Waiting for event"}
STATE_LABELS = {"success": "✅ Yes", "failure": "❌ No", "running": "▶ Running"}
ATTEMPT_STATES = {"success": "✅ Success", "error": "❌ Error", "running": "🔄 Working"}


def fmt_time(ms: float | None) -> str:
    """Epoch milliseconds as local date and time."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="milliseconds")


def fmt_duration(start: float | None, end: float | None) -> str:
    """``end - start`` as ``1.234s``."""
    return "-" if start is None or end is None else f"{(end - start) / 1000:.3f}s"


def fmt_error(error: dict[str, Any] | None) -> str:
    """``name: message``."""
    return "" if not error else f"{error.get('name', 'Error')}: {error.get('message', '')}"


def render_table(headers: list[str], rows: list[list[str]], indent: str = "") -> str:
    """A plain aligned table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(indent + "  ".join(str(c).ljust(w) for c, w in zip(line, widths,
                                                                       strict=False)).rstrip()
                     for line in lines)


def _attempt_rows(attempts: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(a["attempt"]), fmt_time(a.get("start")), fmt_time(a.get("end")),
             fmt_duration(a.get("start"), a.get("end")),
             ATTEMPT_STATES.get(a.get("state", ""), a.get("state", "")), fmt_error(a.get("error"))]
            for a in attempts]


def _output(value: Any, limit: int) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "[...output truncated]"


def render_instance(r: dict[str, Any], *, step_output: bool = True, limit: int = 5000) -> str:
    """``instances describe`` as wrangler prints it, plus a Rollback section."""
    out = [f"Describing instance {r['id']}:",
           f"  Workflow Name:          {r['workflow']}",
           f"  Instance Id:            {r['id']}",
           f"  Status:                 {STATUS_LABELS.get(r['status'], '❓ Unknown')}",
           f"  Queued:                 {fmt_time(r.get('queued'))}",
           f"  Start:                  {fmt_time(r.get('start'))}",
           f"  End:                    {fmt_time(r.get('end'))}",
           f"  Duration:               {fmt_duration(r.get('start'), r.get('end'))}"]
    done = [s for s in r["steps"] if s["type"] == "do" and s["state"] == "success"]
    last = f"{done[-1]['name']}-{done[-1]['count']}" if done else "-"
    out.append(f"  Last Successful Step:   {last}")
    if r.get("error"):
        out.append(f"  Error:                  {fmt_error(r['error'])}")
    if r.get("output") is not None and step_output:
        out.append(f"  Output:                 {_output(r['output'], limit)}")
    out.append("")
    out.append("Steps:" if r["steps"] else "Steps: none")
    for s in r["steps"]:
        out += ["", f"  Name:      {s['name']}-{s['count']}",
                f"  Type:      {STEP_TYPES.get(s['type'], s['type'])}",
                f"  Start:     {fmt_time(s['start'])}",
                f"  End:       {fmt_time(s['end'])}",
                f"  Duration:  {fmt_duration(s['start'], s['end'])}",
                f"  Success:   {STATE_LABELS.get(s['state'], s['state'])}"]
        if s.get("retry_at"):
            out.append(f"  Retries At: {fmt_time(s['retry_at'])}")
        if s["type"] == "do":
            out.append(f"  Rollback:  {'registered' if s.get('has_rollback') else 'none'}")
        if s.get("error"):
            out.append(f"  Error:     {fmt_error(s['error'])}")
        if step_output and s.get("output") is not None:
            out.append(f"  Output:    {_output(s['output'], limit)}")
        if s.get("attempts"):
            out.append(render_table(["#", "Start", "End", "Duration", "State", "Error"],
                                    _attempt_rows(s["attempts"]), indent="    "))
    rb = r.get("rollback_phase")
    out += ["", "Rollback:" if rb else "Rollback: not run (no rollback phase)"]
    if rb:
        out += [f"  Trigger:   {fmt_error(rb.get('trigger'))}",
                f"  Outcome:   {rb.get('outcome')}"
                + (f" ({rb.get('completed')}/{rb.get('total')} handlers completed)"
                   if rb.get("total") is not None else ""),]
        if rb.get("error"):
            out.append(f"  Error:     {fmt_error(rb['error'])}")
        for s in rb["steps"]:
            out += ["", f"  {s['order']}. Undo {s['step']}",
                    f"     Success:   {STATE_LABELS.get(s['state'], s['state'])}",
                    f"     Start:     {fmt_time(s['start'])}",
                    f"     Duration:  {fmt_duration(s['start'], s['end'])}"]
            if s.get("error"):
                out.append(f"     Error:     {fmt_error(s['error'])}")
            if s.get("attempts"):
                out.append(render_table(["#", "Start", "End", "Duration", "State", "Error"],
                                        _attempt_rows(s["attempts"]), indent="       "))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "dev":
            project = load_project(args.config)
            return asyncio.run(run_dev(project, Path(args.persist_to), args.ip, args.port))
        return _run(args, lambda call: _workflows(args, call))
    except (CliError, EmulatorError) as exc:
        print(f"✘ [ERROR] {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
