"""What a test changed about an instance's steps: the modifiers of ``cloudflare:test``.

`InstanceModifier` is what ``modify(fn)`` hands to ``fn`` (``disable_sleeps``,
``mock_step_result``, ``mock_step_error``, ``force_step_timeout``, ``mock_event``,
``force_event_timeout``, ``disable_retry_delays``); the engine asks it, through
`Modifiers`, before each attempt, sleep and event wait. A step is selected as
``{"name": ..., "index": n}``: the n-th step of that name (1 when left out), as Cloudflare
counts them. Modifiers live in memory for the emulator's lifetime and survive restarts of
the instance, as on Cloudflare; `Modifiers` holds them for every instance, and for
whole-workflow sessions (``introspect_workflow``) that apply to instances created later.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows_saga import WorkflowTimeoutError

from .values import encode_value, loads

Selector = Mapping[str, Any]
StepId = tuple[str, int]  # (name, index)
PERSISTENT = 0  # an error or timeout for every attempt, not only the next `times`


def step_id(step: Selector | str) -> StepId:
    """``{"name": "x", "index": 2}`` (or just ``"x"``) as ``("x", 2)``.

    Raises:
        TypeError: no name, or an index that is not a positive integer.
    """
    if isinstance(step, str):
        return step, 1
    name = step.get("name") if isinstance(step, Mapping) else None
    if not isinstance(name, str) or not name:
        raise TypeError(f'a step is selected as {{"name": "...", "index": 1}}, not {step!r}')
    index = step.get("index") or 1
    if not isinstance(index, int) or isinstance(index, bool) or index < 1:
        raise TypeError(f"step index must be a positive integer, not {index!r}")
    return name, index


@dataclass
class Override:
    """What replaces one attempt's callback: an error, a timeout, or a result."""

    error: BaseException | None = None
    timeout: bool = False
    result: Any = None
    has_result: bool = False

    def apply(self) -> Any:
        """The mocked result, or raise the mocked error or the step's timeout."""
        if self.error is not None:
            raise copy.copy(self.error)
        if self.timeout:  # as Cloudflare's engine forces it: a timeout of no time at all
            raise WorkflowTimeoutError("Execution timed out after 0ms")
        return loads(encode_value(self.result, what="mocked step result"))


@dataclass
class InstanceModifier:
    """The modifications of one instance (``cloudflare:test``'s ``WorkflowInstanceModifier``).

    Every method is ``async`` as in JS, so a ported ``await m.disable_sleeps()`` works.
    """

    all_sleeps_off: bool = False
    sleeps_off: set[StepId] = field(default_factory=set)
    all_retry_delays_off: bool = False
    retry_delays_off: set[StepId] = field(default_factory=set)
    results: dict[StepId, Any] = field(default_factory=dict)
    errors: dict[tuple[StepId, int], BaseException] = field(default_factory=dict)
    timeouts: set[tuple[StepId, int]] = field(default_factory=set)
    next_failure: dict[StepId, int] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    event_timeouts: set[StepId] = field(default_factory=set)

    # -- what tests call ----------------------------------------------------------------

    async def disable_sleeps(self, steps: list[Selector] | None = None) -> None:
        """Make every sleep (or the ``steps`` given) end at once."""
        if steps is None:
            self.all_sleeps_off = True
        else:
            self.sleeps_off.update(step_id(s) for s in steps)

    async def disable_retry_delays(self, steps: list[Selector] | None = None) -> None:
        """Retry failed attempts at once (of every step, or of the ``steps`` given)."""
        if steps is None:
            self.all_retry_delays_off = True
        else:
            self.retry_delays_off.update(step_id(s) for s in steps)

    async def mock_step_result(self, step: Selector | str, result: Any) -> None:
        """The step's attempts return ``result`` without running its callback."""
        sid = step_id(step)
        if sid in self.results:
            raise ValueError(f"[WorkflowIntrospector] Trying to mock step '{sid[0]}' multiple "
                             "times!")
        encode_value(result, what="mocked step result")  # refuse what a step could not return
        self.results[sid] = result

    async def mock_step_error(self, step: Selector | str, error: BaseException,
                              times: int | None = None) -> None:
        """The step's attempts raise ``error`` (the next ``times`` attempts, or all)."""
        sid = step_id(step)
        if sid in self.results:
            raise ValueError(f"[WorkflowIntrospector] Trying to mock error on step '{sid[0]}' "
                             "after mocking its result!")
        if not isinstance(error, BaseException):
            raise TypeError(f"mock_step_error takes an exception, not {type(error).__name__}")
        for attempt in self._attempts(sid, times):
            self.errors[(sid, attempt)] = error

    async def force_step_timeout(self, step: Selector | str, times: int | None = None) -> None:
        """The step's attempts time out (the next ``times`` attempts, or all)."""
        sid = step_id(step)
        if sid in self.results:
            raise ValueError(f"[WorkflowIntrospector] Trying to force timeout on step "
                             f"'{sid[0]}' after mocking its result!")
        self.timeouts.update((sid, attempt) for attempt in self._attempts(sid, times))

    async def mock_event(self, event: Mapping[str, Any]) -> None:
        """``wait_for_event`` of ``event["type"]`` receives ``event["payload"]`` at once."""
        event_type = event.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise TypeError('mock_event takes {"type": "...", "payload": ...}')
        payload = event.get("payload")
        encode_value(payload, what="mocked event payload")
        self.events[event_type] = payload

    async def force_event_timeout(self, step: Selector | str) -> None:
        """That ``wait_for_event`` times out at once."""
        self.event_timeouts.add(step_id(step))

    def _attempts(self, sid: StepId, times: int | None) -> list[int]:
        if times is None:
            return [PERSISTENT]
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise TypeError(f"times must be a positive integer, not {times!r}")
        start = self.next_failure.get(sid, 1)
        self.next_failure[sid] = start + times
        return list(range(start, start + times))

    # camelCase, so a ported ``m.mockStepResult(...)`` reads as in JS
    disableSleeps = disable_sleeps
    disableRetryDelays = disable_retry_delays
    mockStepResult = mock_step_result
    mockStepError = mock_step_error
    forceStepTimeout = force_step_timeout
    mockEvent = mock_event
    forceEventTimeout = force_event_timeout

    # -- what the engine asks -----------------------------------------------------------

    def attempt(self, name: str, index: int, attempt: int) -> Override | None:
        """What replaces attempt ``attempt`` of step ``name``/``index``, if anything.

        As Cloudflare's engine: a mocked error first, then a forced timeout, then a result.
        """
        sid = (name, index)
        error = self.errors.get((sid, attempt)) or self.errors.get((sid, PERSISTENT))
        if error is not None:
            return Override(error=error)
        if (sid, attempt) in self.timeouts or (sid, PERSISTENT) in self.timeouts:
            return Override(timeout=True)
        if sid in self.results:
            return Override(result=self.results[sid], has_result=True)
        return None

    def sleep_off(self, name: str, index: int) -> bool:
        """Whether this sleep ends at once."""
        return self.all_sleeps_off or (name, index) in self.sleeps_off

    def retry_delay_off(self, name: str, index: int) -> bool:
        """Whether this step's failed attempts are retried at once."""
        return self.all_retry_delays_off or (name, index) in self.retry_delays_off

    def event_timeout(self, name: str, index: int) -> bool:
        """Whether this event wait times out at once."""
        return (name, index) in self.event_timeouts

    def mocked_event(self, event_type: str) -> tuple[bool, Any]:
        """``(True, payload)`` if events of ``event_type`` are mocked."""
        if event_type in self.events:
            return True, self.events[event_type]
        return False, None


Operation = tuple[str, tuple[Any, ...], dict[str, Any]]


def apply(modifier: InstanceModifier, operation: Operation) -> None:
    """Apply a recorded ``(method, args, kwargs)`` to ``modifier`` now.

    The modifier's methods are ``async`` only to read as in JS: they never suspend, so the
    coroutine finishes on its first step.
    """
    name, args, kwargs = operation
    coroutine = getattr(modifier, name)(*args, **kwargs)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError(f"modifier {name} suspended")  # none does


class Recorder:
    """What ``modify_all(fn)`` hands to ``fn``: the modifier's methods, recorded for every
    instance the session takes (each checked at once on a scratch modifier)."""

    def __init__(self, operations: list[Operation]) -> None:
        self._operations = operations
        self._scratch = InstanceModifier()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(InstanceModifier, name, None)):
            raise AttributeError(f"a workflow modifier has no method {name!r}")

        async def record(*args: Any, **kwargs: Any) -> None:
            apply(self._scratch, (name, args, kwargs))  # raises what the real one would
            self._operations.append((name, args, kwargs))

        return record


@dataclass
class Session:
    """An ``introspect_workflow`` session: its modifications go to every instance of
    ``workflow`` created while it is open; ``ids`` are those instances."""

    workflow: str
    operations: list[Operation] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


class Modifiers:
    """Every instance's modifier, and the open whole-workflow sessions, of one emulator."""

    def __init__(self) -> None:
        self._by_instance: dict[tuple[str, str], InstanceModifier] = {}
        self._sessions: list[Session] = []

    def of(self, workflow: str, instance_id: str) -> InstanceModifier | None:
        """The instance's modifier, if a test made one (the engine's hot-path question)."""
        return self._by_instance.get((workflow, instance_id)) if self._by_instance else None

    def make(self, workflow: str, instance_id: str) -> InstanceModifier:
        """The instance's modifier, made on first use (the instance may not exist yet)."""
        return self._by_instance.setdefault((workflow, instance_id), InstanceModifier())

    def drop(self, workflow: str, instance_id: str) -> None:
        """Forget the instance's modifications."""
        self._by_instance.pop((workflow, instance_id), None)

    def open_session(self, workflow: str) -> Session:
        """Start recording the instances of ``workflow`` created from now on."""
        session = Session(workflow)
        self._sessions.append(session)
        return session

    def close_session(self, session: Session) -> None:
        """Stop applying ``session`` to new instances."""
        if session in self._sessions:
            self._sessions.remove(session)

    def created(self, workflow: str, instance_id: str) -> None:
        """An instance was created: the open sessions of its workflow take it and apply
        their modifications to it."""
        for session in self._sessions:
            if session.workflow == workflow:
                session.ids.append(instance_id)
                for operation in session.operations:
                    apply(self.make(workflow, instance_id), operation)
