"""The rollback phase: which handlers run, in what order, with what, and what comes of it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from workflows_saga import RollbackContext, StepContext
from workflows_saga._backend import RollbackOptions, StepCall
from workflows_saga._errors import error_from_record

from .events import ROLLBACK, StepEvents
from .step_log import StepRow
from .steps import PlannedStep, resolve_or_default, shown_config
from .values import decode

if TYPE_CHECKING:
    from .clock import Clock
    from .step_log import InstanceLog

TERMINATED_ERROR = {"name": "Terminated", "message": "Instance terminated during rollback"}
# What a Python handler sees of it on Cloudflare: the error crosses RPC as a plain Error,
# which keeps the message but not the custom name (observed under workerd).
TERMINATED_SEEN_BY_HANDLERS = {"name": "Error", "message": TERMINATED_ERROR["message"]}


def rollback_order(rows: dict[str, StepRow]) -> list[StepRow]:
    """Steps eligible for rollback, in the order their handlers run: reverse start order."""
    eligible = [r for r in rows.values() if r.kind == "do" and r.has_rollback]
    return sorted(eligible, key=lambda r: r.seq, reverse=True)


class RollbackPhase:
    """Registers handlers and runs them for `InstanceEngine` (a mixin over the engine's state)."""

    clock: Clock
    log: InstanceLog
    meta: dict[str, Any]
    _registry: dict[str, RollbackOptions]  # step key -> handler: code is never persisted
    _rollback_phase: bool

    if TYPE_CHECKING:  # provided by the engine and the step execution
        @property
        def rows(self) -> dict[str, StepRow]: ...
        def _set_meta(self, **changes: Any) -> None: ...
        async def _attempts(self, row: StepRow | None, start: PlannedStep | None,
                            invoke: Callable[[StepContext], Awaitable[Any]],
                            resolved: dict[str, Any], events: StepEvents) -> Any: ...

    # == rollback =================================================================================

    def _register(self, key: str, has_rollback: int | bool, call: StepCall) -> None:
        if call.rollback is not None and has_rollback:
            self._registry[key] = call.rollback

    async def _rollback(self, trigger: dict[str, str]) -> dict[str, Any] | None:
        """Run every eligible handler, newest-started first; halt at the first that fails."""
        eligible = rollback_order(self.rows)
        if not eligible:
            return None
        if not self.meta.get("rollback_started"):
            with self.log.transaction():
                self._set_meta(rollback_started=True)
                self.log.append("ROLLBACK_START", self.clock.now_ms(),
                                data={"triggerError": trigger, "totalSteps": len(eligible)})
        error = error_from_record(
            TERMINATED_SEEN_BY_HANDLERS if trigger == TERMINATED_ERROR else trigger)
        completed, failure = 0, None
        self._rollback_phase = True
        try:
            for fwd in eligible:
                rkey = f"rollback:{fwd.key}"
                done = self.rows.get(rkey)
                if done is not None and done.state == "success":
                    completed += 1
                    continue
                if done is not None and done.state == "failure":
                    failure = json.loads(done.error or "{}")
                    break
                options = self._registry.get(fwd.key)
                if options is None:
                    failure = {"name": "RollbackMissing",
                               "message": "Rollback function not available in registry"}
                    planned = PlannedStep(rkey, "rollback", fwd.label, 1, -1, None)
                    with self.log.transaction():
                        self.log.append(ROLLBACK.step_failure, self.clock.now_ms(), key=rkey,
                                        label=fwd.label,
                                        data={**planned.start_data(), "error": failure})
                    break
                resolved = resolve_or_default(options.config)
                planned = PlannedStep(rkey, "rollback", fwd.label, 1, -1, shown_config(resolved))
                handler_input = RollbackContext(
                    output=decode(fwd.output) if fwd.state == "success" else None,
                    error=error,
                    ctx=StepContext.build(fwd.name, fwd.count, max(fwd.attempts, 1),
                                          json.loads(fwd.config or "{}")),
                    step_name=fwd.label,
                )

                async def invoke(_: StepContext, h: Any = options.handler,
                                 rb: RollbackContext[Any] = handler_input) -> None:
                    await h(rb)

                try:
                    await self._attempts(done, planned if done is None else None, invoke,
                                         resolved, ROLLBACK)
                except Exception:
                    failure = json.loads(self.rows[rkey].error or "{}")
                    break
                completed += 1
        finally:
            self._rollback_phase = False
        outcome = {"outcome": "failed" if failure else "complete", "error": failure}
        with self.log.transaction():
            self.log.append("ROLLBACK_FAILED" if failure else "ROLLBACK_COMPLETE",
                            self.clock.now_ms(),
                            data={"totalSteps": len(eligible), "completedSteps": completed})
        return outcome
