"""What users see of an instance's life: status names and ``subscribe()`` events."""

from __future__ import annotations

from typing import Any, Literal

from .records import TERMINAL as _TERMINAL
from .records import InstanceStatus

Status = Literal[
    "queued", "running", "paused", "errored", "terminated", "complete", "waiting",
    "waitingForPause", "unknown",
]
STATUSES: tuple[str, ...] = tuple(str(s) for s in InstanceStatus)
TERMINAL: frozenset[str] = frozenset(str(s) for s in _TERMINAL)

# Log event -> subscribe() event type (as in Cloudflare's instance subscriptions).
SUBSCRIBE_NAMES: dict[str, str] = {
    "WORKFLOW_QUEUED": "workflow_queued",
    "WORKFLOW_START": "workflow_started",
    "WORKFLOW_SUCCESS": "workflow_completed",
    "WORKFLOW_FAILURE": "workflow_errored",
    "WORKFLOW_TERMINATED": "workflow_terminated",
    "WORKFLOW_PAUSED": "workflow_paused",
    "WORKFLOW_RESUMED": "workflow_resumed",
    "WORKFLOW_RESTARTED": "workflow_restarted",
    "STEP_START": "step_started",
    "STEP_SUCCESS": "step_completed",
    "STEP_FAILURE": "step_errored",
    "ATTEMPT_START": "attempt_started",
    "ATTEMPT_SUCCESS": "attempt_completed",
    "ATTEMPT_FAILURE": "attempt_errored",
    "SLEEP_START": "sleep_started",
    "SLEEP_COMPLETE": "sleep_completed",
    "WAIT_START": "wait_for_event_started",
    "WAIT_COMPLETE": "wait_for_event_completed",
    "WAIT_TIMEOUT": "wait_for_event_timed_out",
    "EVENT_RECEIVED": "event_received",
    "ROLLBACK_START": "rollback_started",
    "ROLLBACK_STEP_START": "rollback_step_started",
    "ROLLBACK_STEP_SUCCESS": "rollback_step_completed",
    "ROLLBACK_STEP_FAILURE": "rollback_step_errored",
    "ROLLBACK_ATTEMPT_START": "rollback_attempt_started",
    "ROLLBACK_ATTEMPT_SUCCESS": "rollback_attempt_completed",
    "ROLLBACK_ATTEMPT_FAILURE": "rollback_attempt_errored",
    "ROLLBACK_COMPLETE": "rollback_completed",
    "ROLLBACK_FAILED": "rollback_errored",
}
FINAL_SUBSCRIBE_EVENTS = frozenset({"workflow_completed", "workflow_errored", "workflow_terminated"})


def subscribe_event(entry: dict[str, Any]) -> dict[str, Any]:
    """A log entry as a ``subscribe()`` event: ``{type, eventId, timestamp, ...}``."""
    out: dict[str, Any] = {
        "type": SUBSCRIBE_NAMES.get(entry["event"], entry["event"].lower()),
        "eventId": entry["id"],
        "timestamp": entry["timestamp"],
    }
    if entry.get("step"):
        out["stepName"] = entry["step"]
    if entry.get("attempt"):
        out["attempt"] = entry["attempt"]
    out.update(entry.get("data") or {})
    return out
