"""The describe document of one instance: status, step timeline with attempts, rollback section.

Steps and their attempts come from the engine's own fold of the log (`Instance.steps()`),
so what ``describe`` shows is what the engine acts on.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..log_fold import StepRow

Event = dict[str, Any]
END_EVENTS = ("WORKFLOW_SUCCESS", "WORKFLOW_FAILURE", "WORKFLOW_TERMINATED")


class InstanceView(Protocol):
    """What describing needs of an instance: a live `Instance` or a `state_reader` snapshot."""

    workflow: str
    id: str

    def instance_events(self) -> list[dict[str, Any]]: ...

    def steps(self) -> list[StepRow]: ...


def describe_instance(inst: InstanceView, status: dict[str, Any]) -> dict[str, Any]:
    """``status`` (from ``inst.status()``), the forward steps, the rollback phase, and the
    instance's own log entries (queued, start, restarts, events received, rollback phase, end).

    The steps' entries are left out (their fold is in ``steps``), so a 10,000-step instance
    describes in a fraction of a second; the full log is `Instance.events()`.
    """
    events = inst.instance_events()
    steps: list[dict[str, Any]] = []
    rollback_steps: list[dict[str, Any]] = []
    for row in inst.steps():
        entry = _step_entry(row)
        if row.kind == "rollback":
            entry["step"] = row.name
            entry["order"] = len(rollback_steps) + 1
            rollback_steps.append(entry)
        else:
            steps.append(entry)
    times = {e["event"]: e["timestamp"] for e in reversed(events)}
    end = next((e["timestamp"] for e in reversed(events) if e["event"] in END_EVENTS), None)
    return {"workflow": inst.workflow, "id": inst.id, **status,
            "queued": times.get("WORKFLOW_QUEUED"), "start": times.get("WORKFLOW_START"),
            "end": end, "steps": steps,
            "rollback_phase": _rollback_phase(events, status, rollback_steps), "events": events}


def _step_entry(row: StepRow) -> dict[str, Any]:
    # Once per step (10,000 for a long instance): its attempts inline, not a call each.
    kind, state, wake_at, error = row.kind, row.state, row.wake_at, row.error
    return {
        "name": row.name, "count": row.count, "type": kind, "state": state,
        "start": row.started_at, "end": row.ended_at,
        "output": row.output,
        "error": None if error is None else error.to_json(),
        "retry_at": wake_at if kind == "do" and state == "running" else None,
        "wake_at": wake_at if kind in ("sleep", "wait") else None,
        "has_rollback": row.has_rollback,
        "attempts": [
            {"attempt": a.number, "start": a.started_at, "end": a.ended_at,
             "state": "error" if a.state == "failure" else a.state,
             "error": None if a.error is None else a.error.to_json()}
            for a in row.attempt_log],
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
