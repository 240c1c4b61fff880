"""``workflows-emulator compare``: does a Python port behave like the JS workflow it ports?

Runs the JS workflow on wrangler's local engine (miniflare from ``node_modules``, offline)
and the Python one on the emulator, with the same params, faults and events, and prints
both normalised traces side by side with the first divergence marked; exits 1 when they
differ (so it can sit in CI), 2 when a side could not run. See
`workflows_emulator.porting.trace` for what a trace holds and what is normalised.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from typing import Any, TypeAlias

from ..porting.compare import align, render, report
from ..porting.js_runner import Fault, PortingError, RunSpec, SideResult, run_js
from ..porting.py_runner import run_python
from ..project import load_project
from .client import CliError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
FAULT = re.compile(r"(?P<step>.+?)(?:#(?P<index>\d+))?:(?P<kind>fail|timeout|event-timeout)"
                   r"(?::(?P<times>\d+))?")
EPILOG = """\
faults (--fault, repeatable; the same on both sides, through the introspection modifiers):
  STEP:fail            every attempt of step STEP fails with Error "injected fault in STEP"
  STEP:fail:N          its first N attempts fail (then it runs for real)
  STEP:timeout[:N]     its attempts (or the first N) time out
  STEP:event-timeout   the waitForEvent step STEP times out at once
  STEP#2:...           the 2nd step called STEP (default: the 1st)
Sleeps and retry delays are disabled on both sides unless --keep-delays.

exit status: 0 the traces are equal, 1 they differ, 2 a side could not run.
"""


def add_compare_parser(top: Subparsers) -> None:
    """Register ``compare``."""
    p = top.add_parser(
        "compare", help="run a JS workflow (wrangler's local engine) and its Python port "
        "(the emulator) alike and compare their traces",
        description="Run a JS workflow on wrangler's local engine (miniflare from "
        "node_modules, offline) and its Python port on the emulator with the same params, "
        "faults and events; print both traces side by side with the first divergence marked.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--js", required=True, metavar="DIR",
                   help="the JS Worker project (its folder or wrangler file)")
    p.add_argument("--js-workflow", required=True, metavar="NAME",
                   help="the workflow's name in the JS project's wrangler file")
    p.add_argument("--python", required=True, metavar="DIR",
                   help="the Python Worker project (its folder or wrangler file)")
    p.add_argument("--python-workflow", metavar="NAME",
                   help="the workflow's name in the Python project (default: --js-workflow)")
    p.add_argument("--params", default="{}", metavar="JSON",
                   help="the instance's params, as JSON (default {})")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault on both sides (see below)")
    p.add_argument("--event", action="append", default=[], metavar="TYPE[:JSON]",
                   help="send event TYPE (payload JSON, default {}) once the instance waits "
                   "for it; repeatable, delivered in order")
    p.add_argument("--terminate-rollback-at", metavar="STEP",
                   help="terminate with rollback once step STEP has started (after the "
                   "events); name a waitForEvent step for a deterministic point")
    p.add_argument("--id", default="compare-1", help="the instance id on both sides")
    p.add_argument("--keep-delays", action="store_true",
                   help="keep sleeps and retry delays (they take real time on the JS side)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="real seconds each side may take (default 60)")
    p.add_argument("--width", type=int, default=60, help="width of each column (default 60)")
    p.add_argument("--json", action="store_true",
                   help="print {equal, first_divergence, js, python} as JSON")


def parse_fault(text: str) -> Fault:
    """``STEP[#INDEX]:fail|timeout|event-timeout[:TIMES]`` as a `Fault`."""
    found = FAULT.fullmatch(text)
    if found is None:
        raise CliError(f'--fault "{text}": expected STEP:fail, STEP:fail:N, STEP:timeout[:N] '
                       'or STEP:event-timeout (STEP#2:... for the 2nd step of that name)')
    times = found["times"]
    if found["kind"] == "event-timeout" and times is not None:
        raise CliError(f'--fault "{text}": an event timeout takes no count')
    if times is not None and int(times) < 1:
        raise CliError(f'--fault "{text}": the count of attempts must be at least 1')
    return Fault(found["step"], found["kind"], int(found["index"] or 1),
                 None if times is None else int(times))


def parse_event(text: str) -> tuple[str, Any]:
    """``TYPE`` or ``TYPE:JSON`` as ``(type, payload)``."""
    event_type, sep, payload = text.partition(":")
    if not event_type:
        raise CliError(f'--event "{text}": expected TYPE or TYPE:JSON, e.g. approval:'
                       '{"ok": true}')
    return event_type, _json(payload, f'--event "{text}"') if sep else {}


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def spec_from_args(args: argparse.Namespace, workflow: str) -> RunSpec:
    """The `RunSpec` the options describe, for the side whose workflow is ``workflow``."""
    return RunSpec(
        workflow=workflow, instance_id=args.id, params=_json(args.params, "--params"),
        faults=tuple(parse_fault(f) for f in args.fault),
        events=tuple(parse_event(e) for e in args.event),
        terminate_at=args.terminate_rollback_at, keep_delays=args.keep_delays,
        timeout=args.timeout)


def run_compare(args: argparse.Namespace) -> int:
    """Run both sides, print the comparison, return 0 (equal), 1 (different) or 2."""
    js_spec = spec_from_args(args, args.js_workflow)
    py_spec = spec_from_args(args, args.python_workflow or args.js_workflow)
    load_project(args.python).workflow(py_spec.workflow)  # its mistakes before Node starts
    try:
        js = run_js(args.js, [js_spec])[0]
        with contextlib.redirect_stdout(sys.stderr):  # the workflow's prints: not the report
            py = run_python(args.python, [py_spec])[0]
    except PortingError as exc:
        raise CliError(str(exc)) from None
    missed = [
        f'--fault for step "{fault.step}" (#{fault.index}) matched no step that ran on either '
        f"side, so nothing was injected; the steps were: {ran}. Name the step as the workflow "
        'does, without the "-N" count (STEP#2:... for the 2nd of that name)'
        for fault, ran in unmatched_faults(py_spec.faults, js, py)]
    return show(js, py, as_json=args.json, width=args.width, problems=missed)


def unmatched_faults(faults: tuple[Fault, ...], *sides: SideResult) -> list[tuple[Fault, str]]:
    """The faults whose step ran on neither side (a misspelt name injects nothing), each with
    the steps that did run."""
    labels: set[str] = set()
    for side in sides:
        for step in (side.trace or {}).get("steps", []):
            labels.add(str(step.get("step")))
    ran = ", ".join(sorted(labels)) or "none"
    return [(f, ran) for f in faults if f"{f.step}-{f.index}" not in labels]


def show(js: SideResult, py: SideResult, *, as_json: bool = False, width: int = 60,
         problems: list[str] | None = None) -> int:
    """Print the comparison of two sides; the exit status (2 if ``problems``: the run was not
    the one asked for, whatever the traces say)."""
    failed = [r.error for r in (js, py) if r.error is not None] + list(problems or ())
    if failed or js.trace is None or py.trace is None:
        if as_json:
            print(json.dumps({"equal": False, "errors": failed}, indent=2))
        else:
            print("\n".join(f"✘ {e}" for e in failed))
        return 2
    if as_json:
        print(json.dumps({**report(js.trace, py.trace),
                          "engines": {"js": js.engine, "python": py.engine}}, indent=2))
        return 0 if report(js.trace, py.trace)["equal"] else 1
    rows = align(js.trace, py.trace)
    print(render(rows, width=width, titles=(f"JS: {js.engine}", f"Python: {py.engine}")))
    differing = sum(not r.same for r in rows)
    if differing:
        print(f"\n✘ the traces differ ({differing} line(s) marked ≠)")
        return 1
    print("\n✔ the traces are equal")
    return 0
