"""Assertions on an instance's steps and rollback, with failure messages that show a diff.

Each compares a list the test expects with the same list read from the instance's log and,
when they differ, raises `AssertionError` with both side by side, the first difference
marked, and the instance's status.

Example:
    >>> assert_step_trace(inst, ["reserve funds", "debit source", "credit destination"])
    ...                                                           # doctest: +SKIP
    >>> assert_rolled_back(inst, ["credit destination", "debit source", "reserve funds"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..log_fold import StepRow
from .waits import FORWARD_KINDS, describe_progress, named

if TYPE_CHECKING:
    from ..emulator import Instance

ExpectedStep = str | Mapping[str, Any]
"""A step name (or ``"name-count"`` label), or a mapping of some of ``name``, ``kind``
(``do``/``sleep``/``wait``), ``state`` (``running``/``success``/``failure``), ``attempts``,
``output``, ``label``, ``count``: only the keys given are compared."""
STEP_FIELDS = frozenset({"name", "kind", "state", "attempts", "output", "label", "count"})
HANDLER_OUTCOMES = ("success", "failure")
PHASE_OUTCOMES = ("complete", "failed")
_NOTHING = "-"


def assert_step_trace(instance: Any, expected: Sequence[ExpectedStep]) -> None:
    """Assert that the instance's forward steps, in start order, are ``expected``.

    Rollback handlers are not part of the trace (see `assert_rolled_back`).

    Raises:
        AssertionError: the traces differ; the message shows both, the first difference
            marked, and the instance's status.
    """
    inst = _instance(instance)
    for item in expected:
        if not isinstance(item, str):
            _check_fields(item)
    rows = [r for r in inst.steps() if r.kind in FORWARD_KINDS]
    actual = [_shown_like(row, want) for row, want in _paired(rows, expected)]
    wanted = [_expected_text(e) for e in expected]
    if actual != wanted:
        raise AssertionError(_diff_message(
            f"the step trace of {_where(inst)} is not the one expected", wanted, actual, inst))


def assert_rolled_back(instance: Any, steps: Sequence[str], *,
                       outcomes: Sequence[str] | Mapping[str, str] | None = None,
                       outcome: str | None = None) -> None:
    """Assert that the rollback ran the handlers of exactly ``steps``, in this order.

    Args:
        steps: the forward steps whose handlers ran, by name (or ``"name-count"`` label), in
            the order they ran (newest-started first, as Cloudflare runs them); ``[]``
            asserts that no rollback ran.
        outcomes: each handler's end, ``"success"`` or ``"failure"``: a list parallel to
            ``steps`` or a mapping of some of them; ``None`` leaves them unchecked.
        outcome: the phase's, ``"complete"`` or ``"failed"``; ``None`` expects ``"failed"``
            if ``outcomes`` has a failure and ``"complete"`` otherwise.

    Raises:
        AssertionError: no rollback ran, or it ran other handlers, in another order, with
            other outcomes; the message shows expected and actual side by side.
    """
    inst = _instance(instance)
    per_step = _outcomes_by_step(steps, outcomes)
    if outcome is None:
        outcome = "failed" if "failure" in per_step.values() else "complete"
    if outcome not in PHASE_OUTCOMES:
        raise ValueError(f"outcome must be one of {PHASE_OUTCOMES}, not {outcome!r}")
    rows = inst.steps()
    labels = {r.label: r for r in rows if r.kind == "do"}
    handlers = [r for r in rows if r.kind == "rollback"]
    every = outcomes is not None and not isinstance(outcomes, Mapping)
    wanted = [_handler_text(s, per_step.get(s)) for s in steps]
    actual = []
    for handler, want in _paired(handlers, steps):
        forward = labels.get(handler.name)
        name = handler.name if forward is None else (
            want if want is not None and named(forward, want) else forward.name)
        shown = every or name in per_step
        actual.append(_handler_text(name, handler.state if shown else None))
    rollback = _status(inst).get("rollback")
    if not steps and not handlers and rollback is None:
        return  # none expected, none ran
    if actual != wanted:
        raise AssertionError(_diff_message(
            f"the rollback of {_where(inst)} did not run the handlers expected", wanted,
            actual, inst))
    if rollback is None:
        raise AssertionError(f"no rollback ran in {_where(inst)}: {_progress(inst)}")
    if rollback["outcome"] != outcome:
        error = rollback.get("error") or {}
        raise AssertionError(
            f"the rollback of {_where(inst)} ended {rollback['outcome']!r}, expected "
            f"{outcome!r} (error: {error.get('name')}: {error.get('message')}); {_progress(inst)}")


# -- reading ------------------------------------------------------------------------------------


def _instance(obj: Any) -> Instance:
    """An `Instance`, from itself or from a Worker's ``WorkflowInstance`` (``env.X.create``)."""
    from ..emulator import Instance
    from ..workers_shim.env import WorkflowInstance

    if isinstance(obj, WorkflowInstance):
        obj = obj._instance
    if not isinstance(obj, Instance):
        raise TypeError(f"expected an instance (from workflow.create() or get()), not "
                        f"{type(obj).__name__}")
    return obj


def _status(inst: Instance) -> dict[str, Any]:
    settled = inst._catalog.settled_status(inst.workflow, inst.id)
    return settled if settled is not None else inst._engine.status_dict()


def _where(inst: Instance) -> str:
    return f"instance {inst.id!r} of workflow {inst.workflow!r}"


def _progress(inst: Instance) -> str:
    return describe_progress(_status(inst), inst.steps())


def _paired(rows: list[StepRow], expected: Sequence[Any]) -> list[tuple[StepRow, Any]]:
    """Each row with the expected item at its place (``None`` past the end)."""
    return [(row, expected[i] if i < len(expected) else None) for i, row in enumerate(rows)]


def _outcomes_by_step(steps: Sequence[str], outcomes: Sequence[str] | Mapping[str, str] | None
                      ) -> dict[str, str]:
    if outcomes is None:
        return {}
    if isinstance(outcomes, Mapping):
        unknown = set(outcomes) - set(steps)
        if unknown:
            raise ValueError(f"outcomes names steps not in steps: {sorted(unknown)}")
        given = dict(outcomes)
    else:
        if isinstance(outcomes, str) or len(outcomes) != len(steps):
            raise ValueError("outcomes must be a list as long as steps, or a mapping")
        given = dict(zip(steps, outcomes, strict=True))
    bad = sorted(set(given.values()) - set(HANDLER_OUTCOMES))
    if bad:
        raise ValueError(f"a handler's outcome is one of {HANDLER_OUTCOMES}, not {bad}")
    return given


# -- rendering ----------------------------------------------------------------------------------


def _expected_text(item: ExpectedStep) -> str:
    if isinstance(item, str):
        return item
    return _fields_text(item)


def _fields_text(fields: Mapping[str, Any]) -> str:
    name = fields.get("name")
    rest = ", ".join(f"{k}={v!r}" for k, v in fields.items() if k != "name")
    head = str(name) if name is not None else ""
    return f"{head} ({rest})" if rest and head else head or f"({rest})"


def _shown_like(row: StepRow, want: ExpectedStep | None) -> str:
    """``row`` rendered with the keys ``want`` uses, so equal steps render equal."""
    if want is None:
        return row.name
    if isinstance(want, str):
        return want if named(row, want) else row.name
    name = want.get("name")
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name if named(row, str(name)) else row.name
    for key in want:
        if key != "name":
            fields[key] = _row_field(row, key)
    return _fields_text(fields)


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - STEP_FIELDS)
    if unknown:
        raise ValueError(f"cannot compare a step's {unknown[0]!r}; use some of "
                         f"{', '.join(sorted(STEP_FIELDS))}")


def _row_field(row: StepRow, key: str) -> Any:
    return getattr(row, key)


def _handler_text(step: str, state: str | None) -> str:
    return step if state is None else f"{step} ({state})"


def _diff_message(title: str, expected: list[str], actual: list[str], inst: Instance) -> str:
    """``title``, then expected and actual side by side with the first difference marked."""
    first = next((i for i in range(max(len(expected), len(actual)))
                  if i >= len(expected) or i >= len(actual) or expected[i] != actual[i]), 0)
    width = max([len("expected"), *(len(e) for e in expected)])
    lines = [f"{title}: first difference at #{first + 1} "
             f"(expected {_at(expected, first)}, got {_at(actual, first)})",
             f"     #  {'expected':<{width}}  actual"]
    for i in range(max(len(expected), len(actual))):
        left = expected[i] if i < len(expected) else _NOTHING
        right = actual[i] if i < len(actual) else _NOTHING
        mark = ">" if left != right else " "
        lines.append(f"  {mark} {i + 1:>2}  {left:<{width}}  {right}")
    lines.append(f"the instance: {_progress(inst)}")
    return "\n".join(lines)


def _at(items: list[str], i: int) -> str:
    return repr(items[i]) if i < len(items) else "nothing more"
