"""The describe document of one instance: status, step timeline with attempts, rollback section.

Steps and their attempts come from the engine's own fold of the log (`Instance.steps()`),
so what ``describe`` shows is what the engine acts on.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..log_fold import AttemptRow, StepRow

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
    return {
        "name": row.name, "count": row.count, "type": row.kind, "state": row.state,
        "start": row.started_at, "end": row.ended_at,
        "output": row.output,
        "error": row.error.to_json() if row.error else None,
        "retry_at": row.wake_at if row.kind == "do" and row.state == "running" else None,
        "wake_at": row.wake_at if row.kind in ("sleep", "wait") else None,
        "has_rollback": row.has_rollback,
        "attempts": [_attempt_entry(a) for a in row.attempt_log],
    }


def _attempt_entry(attempt: AttemptRow) -> dict[str, Any]:
    return {
        "attempt": attempt.number, "start": attempt.started_at, "end": attempt.ended_at,
        "state": "error" if attempt.state == "failure" else attempt.state,
        "error": attempt.error.to_json() if attempt.error else None,
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
