"""The normalised trace of one workflow instance, built the same way from either engine.

A trace is a plain JSON-able dict::

    {"status": "errored", "output": None,
     "error": {"name": "NonRetryableError", "message": "..."},
     "steps": [                                   # forward steps, in start order
        {"step": "charge-1", "kind": "do",       # do | sleep | waitForEvent
         "outcome": "failure",                    # success | failure | timeout | running
         "attempts": [{"outcome": "failure", "error": {"name": "Error", "message": "..."}}],
         "output": None}],                        # do steps only: what the step returned
     "rollback": {"outcome": "complete",          # or None when no rollback ran
                  "handlers": [                   # in the order the engine ran them
                     {"step": "charge-1", "outcome": "success", "attempts": [...],
                      "saw": [{"output": None, "error": {...}}]}]}}   # one per call

Each engine's log is first mapped to a list of `Event` (``from_subscribe_events`` for the
JS engine's ``subscribe()`` events, ``from_emulator_events`` for ``inst.events()``), then
`build_trace` folds that list, with the handlers' views and the final status, into the
dict. The handlers' views (``saw``) come from the handlers themselves on both sides: the
runners wrap each rollback handler passed to ``step.do`` so that it records the
``output`` and ``error`` it receives, then calls the user's handler; neither engine logs
them.

Representation differences mapped to one form (``normalise_value``, ``normalise_error``):

- JS ``undefined`` and Python ``None`` (a step or handler output, ``ctx.output`` of a step
  that never returned, a missing ``output``/``error`` in ``status()``) are both ``None``;
- a float with an integral value (Python ``1.0``) is the integer (JS has one number type);
- tuples are lists, dict keys are sorted;
- the error name ``Exception`` (what a Python port raises for JS's ``new Error(...)``) is
  ``Error``;
- an ``Error`` whose message starts with an error class's name (``"NonRetryableError: ..."``,
  ``"WorkflowTimeoutError: ..."``) is an error of that name with the rest as message. On
  wrangler's local engine an error that crosses RPC loses its name into its message that
  way: a JS rollback handler receives the instance's NonRetryableError as
  ``Error("NonRetryableError: ...")``, and a ``waitForEvent`` timeout that escapes ``run()``
  fails the instance as ``Error("WorkflowTimeoutError: ...")``; the emulator keeps the
  name (as the Python SDK does for the errors it maps).
Step names are the engines' labels, ``"<name>-<count>"``. Left out on purpose: times,
durations, retry delays, resolved configs, event payloads of ``waitForEvent`` steps, and
how the two logs interleave parallel steps' attempts (each step is compared on its own;
the order in which steps started, and in which handlers ran, is compared).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Trace = dict[str, Any]

ERROR_NAMES = {"Exception": "Error"}
# "SomeError: message" in an Error's message: an error that crossed RPC without its name
PREFIXED_NAME = re.compile(r"(?P<name>[A-Z][A-Za-z]*Error): ")

# The JS engine's subscribe() event types -> (our type, kind, outcome)
_JS_TYPES: dict[str, tuple[str, str | None, str | None]] = {
    "step_started": ("start", "do", None),
    "sleep_started": ("start", "sleep", None),
    "wait_started": ("start", "waitForEvent", None),
    "step_completed": ("end", None, "success"),
    "sleep_completed": ("end", None, "success"),
    "wait_completed": ("end", None, "success"),
    "step_errored": ("end", None, "failure"),
    "wait_timed_out": ("end", None, "timeout"),
    "attempt_completed": ("attempt", None, "success"),
    "attempt_errored": ("attempt", None, "failure"),
    "rollback_started": ("rollback_start", None, None),
    "rollback_step_started": ("handler_start", None, None),
    "rollback_attempt_completed": ("handler_attempt", None, "success"),
    "rollback_attempt_errored": ("handler_attempt", None, "failure"),
    "rollback_step_completed": ("handler_end", None, "success"),
    "rollback_step_errored": ("handler_end", None, "failure"),
    "rollback_completed": ("rollback_end", None, "complete"),
    "rollback_errored": ("rollback_end", None, "failed"),
}

# The emulator's log events -> the same
_PY_TYPES: dict[str, tuple[str, str | None, str | None]] = {
    "STEP_START": ("start", "do", None),
    "SLEEP_START": ("start", "sleep", None),
    "WAIT_START": ("start", "waitForEvent", None),
    "STEP_SUCCESS": ("end", None, "success"),
    "SLEEP_COMPLETE": ("end", None, "success"),
    "WAIT_COMPLETE": ("end", None, "success"),
    "STEP_FAILURE": ("end", None, "failure"),
    "WAIT_TIMEOUT": ("end", None, "timeout"),
    "ATTEMPT_SUCCESS": ("attempt", None, "success"),
    "ATTEMPT_FAILURE": ("attempt", None, "failure"),
    "ROLLBACK_START": ("rollback_start", None, None),
    "ROLLBACK_STEP_START": ("handler_start", None, None),
    "ROLLBACK_ATTEMPT_SUCCESS": ("handler_attempt", None, "success"),
    "ROLLBACK_ATTEMPT_FAILURE": ("handler_attempt", None, "failure"),
    "ROLLBACK_STEP_SUCCESS": ("handler_end", None, "success"),
    "ROLLBACK_STEP_FAILURE": ("handler_end", None, "failure"),
    "ROLLBACK_COMPLETE": ("rollback_end", None, "complete"),
    "ROLLBACK_FAILED": ("rollback_end", None, "failed"),
}


@dataclass(frozen=True)
class Event:
    """One log entry, engine-neutral.

    ``type`` is one of start, end, attempt, rollback_start, handler_start, handler_attempt,
    handler_end, rollback_end.
    """

    type: str
    step: str | None = None
    kind: str | None = None
    outcome: str | None = None
    error: dict[str, str] | None = None
    output: Any = None
    has_output: bool = False


def normalise_value(value: Any) -> Any:
    """``value`` in the one form both engines' values are compared in (see the module doc)."""
    if isinstance(value, Mapping):
        return {str(k): normalise_value(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [normalise_value(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def normalise_error(error: Any) -> dict[str, str] | None:
    """``{"name", "message"}`` of an error record (``None`` stays ``None``)."""
    if not isinstance(error, Mapping):
        return None
    name = str(error.get("name") or "Error")
    message = str(error.get("message") or "")
    prefixed = PREFIXED_NAME.match(message) if name == "Error" else None
    if prefixed is not None:
        name, message = prefixed["name"], message[prefixed.end():]
    return {"name": ERROR_NAMES.get(name, name), "message": message}


def _event(mapping: dict[str, tuple[str, str | None, str | None]], kind_of: str, step: Any,
           error: Any, output: Any, has_output: bool) -> Event | None:
    found = mapping.get(kind_of)
    if found is None:
        return None
    ours, kind, outcome = found
    return Event(ours, str(step) if step else None, kind, outcome, normalise_error(error),
                 normalise_value(output) if has_output else None, has_output)


def from_subscribe_events(events: Iterable[Mapping[str, Any]]) -> list[Event]:
    """The JS engine's ``subscribe()`` events (miniflare's shape) as `Event` s."""
    out = []
    for ev in events:
        has_output = ev.get("type") == "step_completed"
        found = _event(_JS_TYPES, str(ev.get("type")), ev.get("stepName"), ev.get("error"),
                       ev.get("output"), has_output)
        if found is not None:
            out.append(found)
    return out


def from_emulator_events(events: Iterable[Mapping[str, Any]]) -> list[Event]:
    """The emulator's ``inst.events()`` as `Event` s."""
    out = []
    for ev in events:
        data = ev.get("data") or {}
        has_output = ev.get("event") == "STEP_SUCCESS"
        found = _event(_PY_TYPES, str(ev.get("event")), ev.get("step"), data.get("error"),
                       data.get("output"), has_output)
        if found is not None:
            out.append(found)
    return out


def handler_view(step_name: Any, output: Any, error: Any) -> dict[str, Any]:
    """What one call of a rollback handler received, as the runners record it."""
    return {"step": str(step_name), "output": normalise_value(output),
            "error": normalise_error(error)}


def build_trace(events: Iterable[Event], status: Mapping[str, Any],
                views: Iterable[Mapping[str, Any]]) -> Trace:
    """Fold the engine-neutral log, the final ``status()`` and the handlers' views."""
    steps: dict[str, dict[str, Any]] = {}
    handlers: dict[str, dict[str, Any]] = {}
    rollback: dict[str, Any] | None = None
    for ev in events:
        if ev.type == "start" and ev.step is not None and ev.step not in steps:
            steps[ev.step] = {"step": ev.step, "kind": ev.kind, "outcome": "running",
                              "attempts": []}
            if ev.kind == "do":
                steps[ev.step]["output"] = None
        elif ev.type in ("end", "attempt") and ev.step in steps:
            _fold_step(steps[ev.step], ev)
        elif ev.type == "rollback_start":
            rollback = {"outcome": "running", "handlers": []}
        elif ev.type == "handler_start" and ev.step is not None and rollback is not None:
            handlers[ev.step] = {"step": ev.step, "outcome": "running", "attempts": [],
                                 "saw": []}
            rollback["handlers"].append(handlers[ev.step])
        elif ev.type in ("handler_attempt", "handler_end") and ev.step in handlers:
            _fold_step(handlers[ev.step], ev)
        elif ev.type == "rollback_end" and rollback is not None:
            rollback["outcome"] = ev.outcome
    for view in views:
        if view.get("step") in handlers:
            handlers[view["step"]]["saw"].append(
                {"output": view.get("output"), "error": view.get("error")})
    return {
        "status": status.get("status"),
        "output": normalise_value(status.get("output")),
        "error": normalise_error(status.get("error")),
        "steps": list(steps.values()),
        "rollback": rollback,
    }


def _fold_step(row: dict[str, Any], ev: Event) -> None:
    if ev.type in ("attempt", "handler_attempt"):
        row["attempts"].append({"outcome": ev.outcome, "error": ev.error})
        return
    row["outcome"] = ev.outcome
    if ev.has_output and "output" in row:
        row["output"] = ev.output
    elif ev.type == "handler_end" and ev.outcome == "failure" and ev.error is not None \
            and not row["attempts"]:
        row["error"] = ev.error  # refused before any attempt (no handler to run)


def trace_lines(trace: Trace) -> list[str]:
    """The trace as the lines that `compare` shows side by side and compares."""
    lines = [f"status: {trace['status']}", f"output: {_show(trace['output'])}",
             f"error: {_show_error(trace['error'])}"]
    for s in trace["steps"]:
        lines.append(f"{s['kind']} {s['step']}: {s['outcome']}")
        lines += _attempt_lines(s["attempts"])
        if s["kind"] == "do" and s["outcome"] == "success":
            lines.append(f"  output: {_show(s.get('output'))}")
    rb = trace["rollback"]
    if rb is None:
        lines.append("rollback: none")
        return lines
    lines.append(f"rollback: {rb['outcome']}")
    for h in rb["handlers"]:
        lines.append(f"  handler {h['step']}: {h['outcome']}")
        if "error" in h:
            lines.append(f"    refused: {_show_error(h['error'])}")
        lines += ["  " + line for line in _attempt_lines(h["attempts"])]
        for seen in h["saw"]:
            lines.append(f"    saw output={_show(seen['output'])} "
                         f"error={_show_error(seen['error'])}")
    return lines


def _attempt_lines(attempts: list[dict[str, Any]]) -> list[str]:
    out = []
    for n, a in enumerate(attempts, 1):
        why = f" {_show_error(a['error'])}" if a["outcome"] == "failure" else ""
        out.append(f"  attempt {n}: {a['outcome']}{why}")
    return out


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _show_error(error: dict[str, str] | None) -> str:
    return "none" if error is None else f"{error['name']}: {error['message']}"
