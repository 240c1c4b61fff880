"""The describe document of one instance: status, step timeline with attempts, rollback section."""

from __future__ import annotations

import json
from typing import Any

from ..emulator import Instance
from ..step_log import StepRow

Event = dict[str, Any]
Attempts = dict[tuple[str, str], list[dict[str, Any]]]
END_EVENTS = ("WORKFLOW_SUCCESS", "WORKFLOW_FAILURE", "WORKFLOW_TERMINATED")


def describe_instance(inst: Instance, status: dict[str, Any]) -> dict[str, Any]:
    """``status`` (from ``inst.status()``), the forward steps, the rollback phase and the events."""
    events = inst.events()
    attempts = attempts_by_step(events)
    steps: list[dict[str, Any]] = []
    rollback_steps: list[dict[str, Any]] = []
    for row in inst.steps():
        entry = _step_entry(row)
        if row.kind == "rollback":
            entry["step"] = row.name
            entry["order"] = len(rollback_steps) + 1
            entry["attempts"] = attempts.get(("ROLLBACK_", row.name), [])
            rollback_steps.append(entry)
        else:
            entry["attempts"] = attempts.get(("", row.label), [])
            steps.append(entry)
    times = {e["event"]: e["timestamp"] for e in reversed(events)}
    end = next((e["timestamp"] for e in reversed(events) if e["event"] in END_EVENTS), None)
    return {"workflow": inst.workflow, "id": inst.id, **status,
            "queued": times.get("WORKFLOW_QUEUED"), "start": times.get("WORKFLOW_START"),
            "end": end, "steps": steps,
            "rollback_phase": _rollback_phase(events, status, rollback_steps), "events": events}


def _step_entry(row: StepRow) -> dict[str, Any]:
    return {
        "name": row.name, "count": row.count, "type": row.kind, "state": row.state,
        "start": row.started_at, "end": row.ended_at,
        "output": json.loads(row.output) if row.output else None,
        "error": json.loads(row.error) if row.error else None,
        "retry_at": row.wake_at if row.kind == "do" and row.state == "running" else None,
        "wake_at": row.wake_at if row.kind in ("sleep", "wait") else None,
        "has_rollback": bool(row.has_rollback),
    }


def _rollback_phase(events: list[Event], status: dict[str, Any],
                    rollback_steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rollback section, or ``None`` when no rollback phase ever started."""
    started = next((e for e in events if e["event"] == "ROLLBACK_START"), None)
    if not (started or rollback_steps):
        return None
    meta = next((e for e in reversed(events)
                 if e["event"] in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED")), None)
    return {
        "trigger": (started or {}).get("data", {}).get("triggerError"),
        "total": (started or {}).get("data", {}).get("totalSteps"),
        "completed": ((meta or {}).get("data") or {}).get("completedSteps"),
        "outcome": (status.get("rollback") or {}).get("outcome", "running"),
        "error": (status.get("rollback") or {}).get("error"),
        "steps": rollback_steps,
    }


def attempts_by_step(events: list[Event]) -> Attempts:
    """Attempts per step, keyed ``("", "<name>-<count>")`` or ``("ROLLBACK_", "<step>")``."""
    out: Attempts = {}
    for e in events:
        ev, step = e["event"], e.get("step")
        prefix = "ROLLBACK_" if ev.startswith("ROLLBACK_") else ""
        kind = ev[len(prefix):]
        if step is None or not kind.startswith("ATTEMPT_"):
            continue
        rows = out.setdefault((prefix, step), [])
        if kind == "ATTEMPT_START":
            rows.append({"attempt": e["attempt"], "start": e["timestamp"], "end": None,
                         "state": "running", "error": None})
            continue
        match = next((a for a in reversed(rows) if a["attempt"] == e["attempt"]), None)
        if match is None:
            match = {"attempt": e["attempt"], "start": None}
            rows.append(match)
        match["end"] = e["timestamp"]
        match["state"] = "success" if kind == "ATTEMPT_SUCCESS" else "error"
        match["error"] = (e.get("data") or {}).get("error")
    return out
