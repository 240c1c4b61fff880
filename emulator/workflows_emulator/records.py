"""Typed records of an instance: its status, the names of its log events, its metadata.

JSON appears only at the storage boundary (`InstanceMeta.to_json` / `from_json`); the
engine works with these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from workflows_saga.backend import ErrorRecord


class InstanceStatus(StrEnum):
    """An instance's status, as ``instance.status()`` names it."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    ERRORED = "errored"
    TERMINATED = "terminated"
    COMPLETE = "complete"
    WAITING = "waiting"
    WAITING_FOR_PAUSE = "waitingForPause"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """Whether nothing can happen to the instance any more (but a restart)."""
        return self in TERMINAL


TERMINAL = frozenset({InstanceStatus.COMPLETE, InstanceStatus.ERRORED, InstanceStatus.TERMINATED})


class Phase(StrEnum):
    """Where the driver is: running ``run()``, rolling back, or finished."""

    FORWARD = "forward"
    ROLLBACK = "rollback"
    DONE = "done"


class LogEvent(StrEnum):
    """The entries of an instance's log (Cloudflare's engine log names)."""

    WORKFLOW_QUEUED = "WORKFLOW_QUEUED"
    WORKFLOW_START = "WORKFLOW_START"
    WORKFLOW_SUCCESS = "WORKFLOW_SUCCESS"
    WORKFLOW_FAILURE = "WORKFLOW_FAILURE"
    WORKFLOW_TERMINATED = "WORKFLOW_TERMINATED"
    WORKFLOW_PAUSED = "WORKFLOW_PAUSED"
    WORKFLOW_RESUMED = "WORKFLOW_RESUMED"
    WORKFLOW_RESTARTED = "WORKFLOW_RESTARTED"
    STEP_START = "STEP_START"
    STEP_SUCCESS = "STEP_SUCCESS"
    STEP_FAILURE = "STEP_FAILURE"
    ATTEMPT_START = "ATTEMPT_START"
    ATTEMPT_SUCCESS = "ATTEMPT_SUCCESS"
    ATTEMPT_FAILURE = "ATTEMPT_FAILURE"
    SLEEP_START = "SLEEP_START"
    SLEEP_COMPLETE = "SLEEP_COMPLETE"
    WAIT_START = "WAIT_START"
    WAIT_COMPLETE = "WAIT_COMPLETE"
    WAIT_TIMEOUT = "WAIT_TIMEOUT"
    EVENT_RECEIVED = "EVENT_RECEIVED"
    ROLLBACK_START = "ROLLBACK_START"
    ROLLBACK_STEP_START = "ROLLBACK_STEP_START"
    ROLLBACK_STEP_SUCCESS = "ROLLBACK_STEP_SUCCESS"
    ROLLBACK_STEP_FAILURE = "ROLLBACK_STEP_FAILURE"
    ROLLBACK_ATTEMPT_START = "ROLLBACK_ATTEMPT_START"
    ROLLBACK_ATTEMPT_SUCCESS = "ROLLBACK_ATTEMPT_SUCCESS"
    ROLLBACK_ATTEMPT_FAILURE = "ROLLBACK_ATTEMPT_FAILURE"
    ROLLBACK_COMPLETE = "ROLLBACK_COMPLETE"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"


@dataclass(frozen=True, slots=True)
class StepEvents:
    """The log events one family of steps uses (forward steps or rollback handlers)."""

    step_start: LogEvent
    step_success: LogEvent
    step_failure: LogEvent
    attempt_start: LogEvent
    attempt_success: LogEvent
    attempt_failure: LogEvent


FORWARD = StepEvents(LogEvent.STEP_START, LogEvent.STEP_SUCCESS, LogEvent.STEP_FAILURE,
                     LogEvent.ATTEMPT_START, LogEvent.ATTEMPT_SUCCESS, LogEvent.ATTEMPT_FAILURE)
ROLLBACK = StepEvents(LogEvent.ROLLBACK_STEP_START, LogEvent.ROLLBACK_STEP_SUCCESS,
                      LogEvent.ROLLBACK_STEP_FAILURE, LogEvent.ROLLBACK_ATTEMPT_START,
                      LogEvent.ROLLBACK_ATTEMPT_SUCCESS, LogEvent.ROLLBACK_ATTEMPT_FAILURE)


@dataclass(frozen=True, slots=True)
class RollbackOutcome:
    """How a rollback phase ended: every handler ran (``complete``) or one failed for good."""

    error: ErrorRecord | None = None

    @property
    def outcome(self) -> str:
        return "failed" if self.error is not None else "complete"

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome,
                "error": self.error.to_json() if self.error is not None else None}

    @classmethod
    def from_json(cls, data: Any) -> RollbackOutcome | None:
        if data is None:
            return None
        error = data.get("error")
        return cls(ErrorRecord.from_json(error) if error is not None else None)


_ERRORS = ("error", "trigger")


@dataclass(slots=True)
class InstanceMeta:
    """What an instance is and where it stands (one JSON value in its storage)."""

    id: str
    workflow: str
    params: Any
    created: float
    status: InstanceStatus = InstanceStatus.QUEUED
    error: ErrorRecord | None = None
    output: Any = None
    rollback: RollbackOutcome | None = None
    phase: Phase = Phase.FORWARD
    started: float | None = None
    ended: float | None = None
    trigger: ErrorRecord | None = None
    """The error that started the rollback phase (or the termination)."""
    terminating: bool = False
    pause_requested: bool = False
    paused_at: float | None = None
    rollback_started: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of a newer emulator's metadata, kept as they were."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for name in _META_FIELDS:
            value = getattr(self, name)
            if isinstance(value, ErrorRecord | RollbackOutcome):
                value = value.to_json()
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        for name in _ERRORS:
            if values.get(name) is not None:
                values[name] = ErrorRecord.from_json(values[name])
        values["rollback"] = RollbackOutcome.from_json(values.get("rollback"))
        values["status"] = InstanceStatus(values.get("status", "unknown"))
        values["phase"] = Phase(values.get("phase", "forward"))
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def status_json(self) -> dict[str, Any]:
        """``{"status", "error", "output", "rollback"}``, as ``instance.status()`` returns it."""
        return {
            "status": str(self.status),
            "error": self.error.to_json() if self.error is not None else None,
            "output": self.output,
            "rollback": self.rollback.to_json() if self.rollback is not None else None,
        }


_META_FIELDS = tuple(f.name for f in fields(InstanceMeta) if f.name != "extra")
"""The fields `InstanceMeta.to_json` writes, in order (it runs at every status change)."""
