"""`MemoryBackend`: an in-memory `StepBackend` test double for running workflows without an engine.

It is not an engine and not a substitute for ``workflows_emulator``: nothing is persisted,
nothing sleeps or times out, and there are no instances, pauses or step limits. It keeps just
enough of the engine's rules to test code written against ``step.do``: step counts per name,
outputs (and final errors) cached by ``(name, count)`` so that a second `MemoryBackend.run`
replays, retries per the step's resolved config (the delays are recorded, not waited),
non-retryable errors, the error types ``step.do`` raises, and rollback handlers run newest
started first.

Example:
    >>> backend = MemoryBackend()                                # doctest: +SKIP
    >>> with pytest.raises(StepError):
    ...     await backend.run(Transfer, {"amount": 10}, rollback=True)
    >>> backend.rolled_back
    ['debit-1']
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._backend import RollbackOptions, StepBackend, StepCall, StepCallback
from ._config import ResolvedConfig, resolve_config
from ._context import RollbackContext, StepContext
from ._durations import Duration, duration_ms, parse_duration_ms
from ._records import ErrorRecord, error_from_record, record_error
from ._step import WorkflowStep

__all__ = ["MemoryBackend"]


@dataclass
class _Started:
    """A started ``do`` step, as rollback needs it."""

    seq: int
    ctx: StepContext
    options: RollbackOptions | None
    output: Any = None


class MemoryBackend(StepBackend):
    """A `StepBackend` that keeps everything in memory and records what happened.

    Attributes:
        calls: every `StepCall` received, replays included.
        attempts: ``(label, attempt)`` of every attempt that ran a callback or handler.
        delays: ``(label, ms)`` of every retry delay an engine would have waited.
        sleeps: ``(name, ms)`` of ``sleep`` and ``(name, epoch ms)`` of ``sleep_until``.
        events: events sent with `send_event` and not yet waited for, by type.
        rolled_back: labels (``"<name>-<count>"``) of the handlers that completed, in order.
    """

    def __init__(self) -> None:
        self.calls: list[StepCall] = []
        self.attempts: list[tuple[str, int]] = []
        self.delays: list[tuple[str, int]] = []
        self.sleeps: list[tuple[str, float]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.rolled_back: list[str] = []
        self._cache: dict[tuple[str, str, int], Any] = {}  # (kind, name, count) -> result
        self._started: dict[str, _Started] = {}  # label -> started do step
        self._counts: dict[tuple[str, str], int] = {}

    async def run(self, workflow: Any, payload: Any = None, *, rollback: bool = False) -> Any:
        """Run ``workflow`` (a `WorkflowEntrypoint` class or instance) once; cached steps replay.

        With ``rollback=True`` an uncaught error first runs `rollback`, then is re-raised.
        """
        self._counts.clear()
        instance = workflow() if isinstance(workflow, type) else workflow
        event = {"payload": payload, "timestamp": datetime.now(), "instanceId": "memory",
                 "workflowName": type(instance).__name__}
        try:
            return await instance.run(event, WorkflowStep(self))
        except Exception as exc:
            if rollback:
                await self.rollback(exc)
            raise

    def send_event(self, event_type: str, payload: Any = None) -> None:
        """Buffer an event for a later (or replayed) ``wait_for_event``."""
        self.events.setdefault(event_type, []).append({"payload": payload, "type": event_type})

    async def rollback(self, error: BaseException) -> ErrorRecord | None:
        """Run the handlers of started steps, newest first; stop at (and return) a failure.

        Handlers see ``error`` as ``step.do`` would raise it; completed ones never run again.
        """
        seen = error_from_record(record_error(error))
        order = sorted(self._started.items(), key=lambda item: item[1].seq, reverse=True)
        for label, started in order:
            if started.options is None or label in self.rolled_back:
                continue
            context = RollbackContext(started.output, seen, started.ctx, label)
            handler = started.options.handler

            async def invoke(_: StepContext, h: Any = handler, rb: Any = context) -> None:
                await h(rb)

            try:
                await self._attempts(label, started.ctx.name, started.ctx.count,
                                     resolve_config(started.options.config), invoke)
            except Exception as exc:
                return record_error(exc)
            self.rolled_back.append(label)
        return None

    # -- StepBackend --------------------------------------------------------------------------

    async def do(self, call: StepCall) -> Any:
        """Run ``call`` with retries, or replay its cached output or final error."""
        self.calls.append(call)
        count = self._next("do", call.name)
        label, key = f"{call.name}-{count}", ("do", call.name, count)
        resolved = resolve_config(call.config)
        started = self._started.get(label)
        if started is None:
            ctx = StepContext.build(call.name, count, 1, resolved.shown)
            started = self._started[label] = _Started(len(self._started), ctx, call.rollback)
        else:
            started.options = call.rollback  # handlers are code, not data: a replay brings its own
        if key not in self._cache:
            try:
                self._cache[key] = started.output = await self._attempts(
                    label, call.name, count, resolved, call.callback, started)
            except Exception as exc:
                self._cache[key] = record_error(exc)
                raise
        return self._replay(key)

    async def sleep(self, name: str, duration: Duration) -> None:
        """Record the sleep (once per ``(name, count)``); return at once."""
        if self._first("sleep", name):
            self.sleeps.append((name, duration_ms(duration, what="sleep duration")))

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        """Record the wake-up time in epoch ms (once per ``(name, count)``); return at once."""
        if self._first("sleep", name):
            at = when.timestamp() * 1000.0 if isinstance(when, datetime) else float(when)
            self.sleeps.append((name, at))

    async def wait_for_event(self, name: str, event_type: str, timeout: Duration) -> dict[str, Any]:
        """The first buffered event of ``event_type``; without one, time out at once.

        Either outcome is kept per ``(name, count)``: a replay returns the same event, or
        times out again (send the event before the run that waits for it).
        """
        key = ("wait", name, self._next("wait", name))
        if key not in self._cache:
            buffered = self.events.get(event_type)
            self._cache[key] = buffered.pop(0) if buffered else ErrorRecord(
                "WorkflowTimeoutError",
                f"Execution timed out after {int(parse_duration_ms(timeout) or 0)}ms")
        return dict(self._replay(key))

    # -- internals ----------------------------------------------------------------------------

    def _replay(self, key: tuple[str, str, int]) -> Any:
        got = self._cache[key]
        if isinstance(got, ErrorRecord):  # a final error (outputs are JSON, never records)
            raise error_from_record(got)
        return got

    def _next(self, kind: str, name: str) -> int:
        count = self._counts[kind, name] = self._counts.get((kind, name), 0) + 1
        return count

    def _first(self, kind: str, name: str) -> bool:
        key = (kind, name, self._next(kind, name))
        first = key not in self._cache
        self._cache[key] = None
        return first

    async def _attempts(self, label: str, name: str, count: int, resolved: ResolvedConfig,
                        invoke: StepCallback, started: _Started | None = None) -> Any:
        attempt = 1
        while True:
            ctx = StepContext.build(name, count, attempt, resolved.shown)
            if started is not None:
                started.ctx = ctx
            self.attempts.append((label, attempt))
            try:
                return await invoke(ctx)
            except Exception as exc:
                if attempt >= resolved.attempts or record_error(exc).non_retryable:
                    raise error_from_record(record_error(exc)) from exc
                self.delays.append((label, await _retry_delay(resolved, attempt, ctx, exc)))
                attempt += 1


async def _retry_delay(resolved: ResolvedConfig, attempt: int, ctx: StepContext,
                       exc: BaseException) -> int:
    if resolved.delay_function is None:
        return resolved.retry_delay_ms(attempt)
    got = resolved.delay_function({"ctx": ctx, "error": exc})
    if inspect.isawaitable(got):
        got = await got
    return resolved.retry_delay_ms(attempt, duration_ms(got, what="retry delay"))
