"""Precise waits: drive an instance until it sleeps, waits for an event, or starts/ends a step.

`Instance.wait(until={"waiting"})` stops at the first park of any kind; these stop at one
particular step, read from the instance's folded log (`StepRow`). Like ``wait()`` they let
every instance run and, with the virtual clock, jump to the next timer only when nothing else
can move; the condition is checked before each jump, so time never passes the awaited moment
(waiting for a sleep returns when the sleep starts, with its timer still ahead).

Example:
    >>> row = await inst.wait_for_sleep("cool-off")               # doctest: +SKIP
    >>> await inst.wait_for_event_wait("approval")
    >>> await inst.wait_for_step_finished("debit")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EmulatorError
from ..log_fold import StepRow

if TYPE_CHECKING:
    from ..emulator import Instance

FORWARD_KINDS = ("do", "sleep", "wait")
"""Row kinds of a workflow's own steps (``wait`` is ``step.wait_for_event``)."""
KIND_NAMES = {"do": "step.do", "sleep": "step.sleep", "wait": "step.wait_for_event",
              "rollback": "rollback handler"}
SHOWN_STEPS = 5
"""How many of the latest steps a failed wait names."""


@dataclass(frozen=True)
class StepMatch:
    """What a wait is for: a description for messages and a test on one row."""

    what: str
    """E.g. ``'a step.sleep named "cool-off" to start'``."""
    test: Callable[[StepRow], bool]


def named(row: StepRow, name: str) -> bool:
    """Whether ``name`` is the row's step name or its ``"name-count"`` label."""
    return name in (row.name, row.label)


def sleeping(name: str | None) -> StepMatch:
    """A ``step.sleep`` (called ``name``, if given) that has started and not ended."""
    what = "a step.sleep" + (f' named "{name}"' if name is not None else "") + " to start"
    return StepMatch(what, lambda row: (
        row.kind == "sleep" and row.state == "running" and (name is None or named(row, name))))


def waiting_for_event(event_type: str | None, name: str | None) -> StepMatch:
    """A ``step.wait_for_event`` (for ``event_type``, called ``name``) that has not ended."""
    parts = [f'named "{name}"'] if name is not None else []
    if event_type is not None:
        parts.append(f'for event type "{event_type}"')
    what = " ".join(["a step.wait_for_event", *parts, "to start waiting"])

    def test(row: StepRow) -> bool:
        if row.kind != "wait" or row.state != "running":
            return False
        if name is not None and not named(row, name):
            return False
        return event_type is None or (row.config or {}).get("type") == event_type

    return StepMatch(what, test)


def step_started(name: str) -> StepMatch:
    """A forward step (``do``, ``sleep`` or ``wait_for_event``) called ``name`` has started."""
    return StepMatch(f'step "{name}" to start',
                     lambda row: row.kind in FORWARD_KINDS and named(row, name))


def step_finished(name: str) -> StepMatch:
    """A forward step called ``name`` has ended, in success or for good in failure."""
    return StepMatch(f'step "{name}" to finish', lambda row: (
        row.kind in FORWARD_KINDS and named(row, name) and row.state != "running"))


def describe_row(row: StepRow) -> str:
    """One step as a failed wait or assertion shows it: ``debit-1 (step.do, running, 2 attempts)``."""
    facts = [KIND_NAMES.get(row.kind, row.kind), row.state]
    if row.kind in ("do", "rollback") and row.attempts:
        facts.append(f"{row.attempts} attempt{'s' if row.attempts != 1 else ''}")
    if row.kind == "wait" and row.config and "type" in row.config:
        facts.append(f'event type "{row.config["type"]}"')
    if row.error is not None:
        facts.append(f"{row.error.name}: {row.error.message}")
    return f"{row.label} ({', '.join(facts)})"


def describe_progress(status: dict[str, Any], rows: Iterable[StepRow]) -> str:
    """What an instance is doing: its status and its latest steps, for error messages."""
    text = f"status {status['status']!r}"
    error = status.get("error")
    if error:
        text += f" ({error.get('name')}: {error.get('message')})"
    latest = list(rows)[-SHOWN_STEPS:]
    if not latest:
        return text + ", no step started yet"
    return text + "; latest steps: " + "; ".join(describe_row(r) for r in latest)


async def wait_for_step_row(instance: Instance, match: StepMatch,
                            timeout: float | None) -> StepRow:
    """Drive ``instance`` until one of its steps passes ``match``; return that step's row.

    Raises:
        EmulatorError: the instance finished, is paused, or cannot move on (no timer, no
            running step) without the step coming; the message says what it does instead.
        TimeoutError: ``timeout`` real seconds passed first.
    """
    found = _first(instance.steps(), match)
    if found is not None:
        return found
    where = f"instance {instance.id!r} of workflow {instance.workflow!r}"
    settled = instance._catalog.settled_status(instance.workflow, instance.id)
    if settled is not None:
        raise EmulatorError(f"waited for {match.what} in {where}, but it has finished: "
                            + describe_progress(settled, instance.steps()))
    engine = await instance._live_engine()
    rows = engine.store.rows

    def done() -> bool:
        return engine.terminal or any(match.test(row) for row in rows.values())

    engine.start()
    try:
        await instance._scheduler.drive_until(engine, done, timeout)
    except (TimeoutError, EmulatorError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"stopped: {exc}"
        raise type(exc)(f"waited for {match.what} in {where}, {reason}; it is at "
                        + describe_progress(engine.status_dict(), engine.step_rows())) from exc
    found = _first(instance.steps(), match)  # (`steps` has what it shows committed first)
    if found is None:
        raise EmulatorError(f"waited for {match.what} in {where}, but it has finished: "
                            + describe_progress(engine.status_dict(), engine.step_rows()))
    return found


def _first(rows: Iterable[StepRow], match: StepMatch) -> StepRow | None:
    return next((row for row in rows if match.test(row)), None)
