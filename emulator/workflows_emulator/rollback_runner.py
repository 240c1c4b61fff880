"""`RollbackRunner`: which handlers run, in what order, with what, and what comes of it.

Handlers run one at a time in reverse step-start order (the failed step's own included),
each through the same `AttemptRunner` as forward steps; the chain halts at the first
handler that fails for good.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflows_saga import RollbackContext, StepContext
from workflows_saga.backend import ErrorRecord, RollbackOptions, error_from_record, resolve_config

from .attempts import AttemptRunner, PlannedStep, own_copy
from .clock import Clock
from .instance_store import InstanceStore
from .log_fold import StepRow
from .records import ROLLBACK, LogEvent, RollbackOutcome
from .values import fresh

TERMINATED_ERROR = ErrorRecord("Terminated", "Instance terminated during rollback")
# What a Python handler sees of it on Cloudflare: the error crosses RPC as a plain Error,
# which keeps the message but not the custom name (observed under workerd).
TERMINATED_SEEN_BY_HANDLERS = ErrorRecord("Error", TERMINATED_ERROR.message)
MISSING_HANDLER = ErrorRecord("RollbackMissing", "Rollback function not available in registry")


def rollback_order(rows: dict[str, StepRow]) -> list[StepRow]:
    """Steps eligible for rollback, in the order their handlers run: reverse start order."""
    eligible = [r for r in rows.values() if r.kind == "do" and r.has_rollback]
    return sorted(eligible, key=lambda r: r.seq, reverse=True)


def handler_input(fwd: StepRow, error: Exception) -> RollbackContext[Any]:
    """What the handler of step ``fwd`` receives."""
    return RollbackContext(
        output=fresh(fwd.output) if fwd.state == "success" else None,
        error=error,
        ctx=StepContext.build(fwd.name, fwd.count, max(fwd.attempts, 1),
                              own_copy(fwd.config or {})),
        step_name=fwd.label,
    )


class RollbackRunner:
    """Runs the rollback phase of one instance."""

    def __init__(self, store: InstanceStore, attempts: AttemptRunner,
                 registry: dict[str, RollbackOptions], clock: Clock) -> None:
        self._store = store
        self._attempts = attempts
        self._registry = registry
        self._clock = clock
        self.active = False
        """Whether handlers are running (the status stays ``running`` meanwhile)."""

    async def run(self, trigger: ErrorRecord, already_started: bool,
                  mark_started: Callable[[], None]) -> RollbackOutcome | None:
        """Run every eligible handler, newest-started first; halt at the first that fails.

        Args:
            trigger: what failed the instance (or the termination).
            already_started: the phase began before a restart (``ROLLBACK_START`` is logged).
            mark_started: persists that the phase began (called inside its transaction).
        """
        eligible = rollback_order(self._store.rows)
        if not eligible:
            return None
        if not already_started:
            with self._store.transaction():
                mark_started()
                self._store.append(LogEvent.ROLLBACK_START, self._clock.now_ms(), data={
                    "triggerError": trigger.to_json(), "totalSteps": len(eligible)})
        seen = TERMINATED_SEEN_BY_HANDLERS if trigger == TERMINATED_ERROR else trigger
        error = error_from_record(seen)  # one error, as one JS Error reaches every handler
        completed, failure = 0, None
        self.active = True
        try:
            for fwd in eligible:
                failure = await self._run_handler(fwd, error)
                if failure is not None:
                    break
                completed += 1
        finally:
            self.active = False
        if not self._store.rollback_closed():  # logged before a crash cut the finish off
            with self._store.transaction():
                self._store.append(
                    LogEvent.ROLLBACK_FAILED if failure else LogEvent.ROLLBACK_COMPLETE,
                    self._clock.now_ms(),
                    data={"totalSteps": len(eligible), "completedSteps": completed})
        return RollbackOutcome(failure)

    async def _run_handler(self, fwd: StepRow, error: Exception) -> ErrorRecord | None:
        """Run (or skip, if done before a restart) the handler of ``fwd``; its final error."""
        rkey = f"rollback:{fwd.key}"
        done = self._store.rows.get(rkey)
        if done is not None and done.state == "success":
            return None
        if done is not None and done.state == "failure":
            return done.error or MISSING_HANDLER
        options = self._registry.get(fwd.key)
        if options is None:
            planned = PlannedStep(rkey, "rollback", fwd.label, 1, -1, None)
            with self._store.transaction():
                self._store.append(ROLLBACK.step_failure, self._clock.now_ms(), key=rkey,
                                   label=fwd.label,
                                   data={**planned.start_data(), "error": MISSING_HANDLER.to_json()})
            return MISSING_HANDLER
        resolved = resolve_config(options.config)
        planned = PlannedStep(rkey, "rollback", fwd.label, 1, -1, resolved.shown)
        rb = handler_input(fwd, error)

        async def invoke(_: StepContext, handler: Any = options.handler) -> None:
            await handler(rb)

        try:
            await self._attempts.run(done, planned if done is None else None, invoke, resolved,
                                     ROLLBACK)
        except Exception:
            return self._store.rows[rkey].error
        return None
