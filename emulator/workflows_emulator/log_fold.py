"""The fold of an instance's log into its steps: one pure function for live and recovered state.

Every transition is a log entry. `fold` turns an entry into the in-memory `StepRow` when it
is appended and when the log is read back after a restart, so what the engine sees live and
what it rebuilds after a crash cannot drift apart. Rows hold decoded values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from workflows_saga.backend import ErrorRecord

from .errors import InvalidActionError
from .records import LogEvent

# What each entry does to its step. Keyed by the plain names: `fold` runs once per entry
# read back (40,000 for a 10,000-step instance), and comparing a string with a `LogEvent`
# member, or hashing one, is a Python-level call in 3.11.
_START, _ATTEMPT_START, _ATTEMPT_SUCCESS, _ATTEMPT_FAILURE, _SUCCESS, _FAILURE = range(6)
_ROLES: dict[str, int] = {
    **dict.fromkeys((LogEvent.STEP_START.value, LogEvent.ROLLBACK_STEP_START.value,
                     LogEvent.SLEEP_START.value, LogEvent.WAIT_START.value), _START),
    **dict.fromkeys((LogEvent.ATTEMPT_START.value, LogEvent.ROLLBACK_ATTEMPT_START.value),
                    _ATTEMPT_START),
    **dict.fromkeys((LogEvent.ATTEMPT_SUCCESS.value, LogEvent.ROLLBACK_ATTEMPT_SUCCESS.value),
                    _ATTEMPT_SUCCESS),
    **dict.fromkeys((LogEvent.ATTEMPT_FAILURE.value, LogEvent.ROLLBACK_ATTEMPT_FAILURE.value),
                    _ATTEMPT_FAILURE),
    **dict.fromkeys((LogEvent.STEP_SUCCESS.value, LogEvent.ROLLBACK_STEP_SUCCESS.value,
                     LogEvent.SLEEP_COMPLETE.value, LogEvent.WAIT_COMPLETE.value), _SUCCESS),
    **dict.fromkeys((LogEvent.STEP_FAILURE.value, LogEvent.ROLLBACK_STEP_FAILURE.value,
                     LogEvent.WAIT_TIMEOUT.value), _FAILURE),
}
_RESUMED = LogEvent.WORKFLOW_RESUMED.value
_NO_DATA: dict[str, Any] = {}
REDACTED = "[REDACTED]"
"""What logs, ``describe`` and ``steps()`` show for the output of a ``sensitive`` step."""
INTERNAL_FIELDS = ("kind", "name", "count", "seq")
"""Keys of a start entry's data that are the engine's bookkeeping, not shown to users."""


def step_key(kind: str, name: str, count: int) -> str:
    """The cache key of the ``count``-th ``kind`` step called ``name``."""
    return f"{kind}:{count}:{name}"


@dataclass(slots=True)
class AttemptRow:
    """One attempt of a step or rollback handler (as `StepRow.attempt_log` shows it)."""

    number: int
    started_at: float
    ended_at: float | None = None
    state: str = "running"
    error: ErrorRecord | None = None
    retry_delay_ms: float | None = None


Attempt = tuple[int, float, float | None, str, ErrorRecord | None, float | None]
"""An attempt as a row keeps it: `AttemptRow`'s fields, in order, as a plain tuple.

A row lives as long as its instance (25,000 of them at Cloudflare's step limit): the cyclic
garbage collector walks every object that could hold a reference, at each full collection.
A tuple of numbers, strings and ``None`` is one it stops tracking (an object per attempt,
and a list per row, were two thirds of what a plain step kept alive for it). A running
step's attempts are a list (a step may retry 10,000 times: appending stays cheap), made a
tuple when the step ends."""
_ATTEMPT_STATE = 3


@dataclass(slots=True)
class StepRow:
    """One step (a ``do``, ``sleep``, ``wait`` or ``rollback``), as folded from the log."""

    key: str
    kind: str
    name: str
    count: int
    seq: int
    state: str = "running"
    config: dict[str, Any] | None = None
    """The resolved config the step ran with, as shown in ``ctx.config``."""
    output: Any = None
    error: ErrorRecord | None = None
    has_rollback: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    wake_at: float | None = None
    attempts_kept: list[Attempt] | tuple[Attempt, ...] = ()
    """Every attempt, oldest first (see `Attempt`; read them as `attempt_log`)."""
    label: str = ""
    """``"<name>-<count>"``, as Workflows shows steps (a handler shows its step's)."""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name if self.kind == "rollback" else f"{self.name}-{self.count}"

    @property
    def sensitive(self) -> bool:
        """Whether the step's output is shown as ``"[REDACTED]"`` (``sensitive: "output"``)."""
        return self.config is not None and self.config.get("sensitive") == "output"

    def shown(self) -> StepRow:
        """The row as people see it: a sensitive step's output redacted."""
        if not self.sensitive or self.state != "success":
            return self
        return replace(self, output=REDACTED)

    @property
    def attempt_log(self) -> list[AttemptRow]:
        """Every attempt, oldest first (new objects at each read: changing them changes
        nothing)."""
        return [AttemptRow(*attempt) for attempt in self.attempts_kept]

    @property
    def attempts(self) -> int:
        """How many attempts have started."""
        return len(self.attempts_kept)

    @property
    def attempt_open(self) -> bool:
        """Whether an attempt started and has not ended (in flight, or cut off by a crash)."""
        kept = self.attempts_kept
        return bool(kept) and kept[-1][_ATTEMPT_STATE] == "running"

    def _end_attempt(self, state: str, ts: float | None, error: ErrorRecord | None = None,
                     retry_delay_ms: float | None = None) -> None:
        """The last attempt ended (``ts`` None: keep its end time)."""
        kept = self._open_attempts()
        number, started, ended, _, old_error, old_delay = kept[-1]
        if ts is not None:
            ended, old_error, old_delay = ts, error, retry_delay_ms
        kept[-1] = (number, started, ended, state, old_error, old_delay)

    def _open_attempts(self) -> list[Attempt]:
        """The attempts as a list, to change (a tuple once the step ended: made a list again)."""
        kept = self.attempts_kept
        if isinstance(kept, tuple):
            kept = list(kept)
            self.attempts_kept = kept
        return kept

    def _close_attempts(self) -> None:
        """The step ended: its attempts become a tuple (see `Attempt`)."""
        if isinstance(self.attempts_kept, list):
            self.attempts_kept = tuple(self.attempts_kept)


def fold(rows: dict[str, StepRow], event: str, key: str | None, ts: float,
         attempt: int | None, data: dict[str, Any] | None) -> StepRow | None:
    """Apply one log entry to ``rows``; return the row it touched."""
    data = data or _NO_DATA  # only read
    if event == _RESUMED:
        shift = data.get("shiftMs", 0)
        for row in rows.values():
            if row.state == "running" and row.wake_at is not None:
                row.wake_at += shift
        return None
    if key is None:
        return None
    found = rows.get(key)
    role = _ROLES.get(event)
    if role == _START or found is None:
        if "kind" not in data:
            return found
        row = rows[key] = StepRow(
            key, data["kind"], data["name"], data["count"], data["seq"],
            config=data.get("config"), has_rollback=bool(data.get("hasRollback")),
            started_at=ts, wake_at=data.get("until"),
        )
        if role == _START:
            return row
    else:
        row = found
    if role is not None:
        _fold_transition(row, role, ts, attempt, data)
    return row


def _fold_transition(row: StepRow, role: int, ts: float, attempt: int | None,
                     data: dict[str, Any]) -> None:
    if role == _ATTEMPT_START:
        kept = row._open_attempts()
        kept.append((attempt or len(kept) + 1, ts, None, "running", None, None))
        row.wake_at = None
    elif role == _ATTEMPT_SUCCESS:
        if row.attempts_kept:
            row._end_attempt("success", ts)
    elif role == _ATTEMPT_FAILURE:
        if row.attempts_kept:
            row._end_attempt("failure", ts, ErrorRecord.from_json(data.get("error")),
                             data.get("retryDelayMs"))
        if "retryDelayMs" in data:
            row.wake_at = ts + data["retryDelayMs"]
    elif role == _SUCCESS:
        row.state, row.ended_at, row.wake_at = "success", ts, None
        if "output" in data:
            row.output = data["output"]
        row._close_attempts()
    elif role == _FAILURE:
        row.state, row.ended_at, row.wake_at = "failure", ts, None
        if row.attempt_open:  # a step failed without its attempt's end (a recovered crash)
            row._end_attempt("failure", None)
        row.error = ErrorRecord.from_json(data.get("error"))
        row._close_attempts()


def keys_from(rows: dict[str, StepRow], key: str) -> set[str] | None:
    """What a restart from step ``key`` forgets: it, the steps started after it, and every
    rollback handler; ``None`` if there is no such step."""
    target = rows.get(key)
    if target is None:
        return None
    return {r.key for r in rows.values() if r.kind == "rollback" or r.seq >= target.seq}


RESTART_TYPES = {"do": "do", "sleep": "sleep", "waitForEvent": "wait"}


def restart_keys(rows: dict[str, StepRow], from_step: dict[str, Any]) -> set[str]:
    """What ``restart(from=from_step)`` forgets, or `InvalidActionError` with Cloudflare's text."""
    kind = RESTART_TYPES.get(from_step.get("type", "do"))
    if kind is None:
        raise InvalidActionError(
            "(instance.cannot_restart) from.type must be one of do, sleep, waitForEvent")
    keys = keys_from(rows, step_key(kind, from_step["name"], int(from_step.get("count", 1))))
    if keys is None:
        raise InvalidActionError(
            f'(instance.cannot_restart) Step "{from_step["name"]}" not found in execution history')
    return keys


def public_data(data: dict[str, Any] | None,
                row: StepRow | None = None) -> dict[str, Any] | None:
    """``data`` without the engine's own bookkeeping fields, and a sensitive output redacted
    (``row`` is the step the entry belongs to)."""
    if data is not None and "output" in data and row is not None and row.sensitive:
        data = {**data, "output": REDACTED}
    if data is None or not any(k in data for k in INTERNAL_FIELDS):
        return data
    return {k: v for k, v in data.items() if k not in INTERNAL_FIELDS} or None


def steps_in_start_order(rows: Iterable[StepRow]) -> list[StepRow]:
    """Rows as people see them, forward steps then rollback handlers, each in start order."""
    shown = [row.shown() for row in rows]
    return sorted(shown, key=lambda r: (r.kind == "rollback", r.seq, r.started_at or 0))
