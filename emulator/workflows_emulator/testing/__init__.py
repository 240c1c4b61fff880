"""Testing helpers for workflows on the emulator (the pytest plugin uses them too).

- `load_test_project`: an unmodified Worker project (wrangler file, ``from workers import``
  modules) on a temporary state directory, with ``env``, ``fetch`` and its workflows; the
  pytest fixture ``workflows_project`` wraps it.
- `assert_step_trace`, `assert_rolled_back`: assertions whose failures show a diff.
- `introspect_workflow_instance`, `introspect_workflow`: ``cloudflare:test``'s introspection
  and modifiers (see `introspection`); ``emu.crash_at(...)`` crashes at a log event (see
  `fault_injection`); `NonDeterminismError` comes from the determinism guard.
- The precise waits are methods of `Instance` (``wait_for_sleep``, ``wait_for_event_wait``,
  ``wait_for_step_started``, ``wait_for_step_finished``), built on `waits`.

Example:
    >>> async with load_test_project("wrangler.toml") as project:     # doctest: +SKIP
    ...     response = await project.fetch("/transfers", method="POST", json={"amount": 5})
    ...     inst = await project.workflows["transfer"].get((await response.json())["id"])
    ...     await inst.wait()
    ...     assert_rolled_back(inst, ["credit destination", "debit source", "reserve funds"])
"""

from __future__ import annotations

from ..introspection import (
    WorkflowInstanceIntrospector,
    WorkflowIntrospector,
    introspect_workflow,
    introspect_workflow_instance,
)
from ..replay_guard import NonDeterminismError, NonDeterminismWarning
from .assertions import assert_rolled_back, assert_step_trace
from .project_fixture import LoadedProject, load_test_project

__all__ = ["LoadedProject", "NonDeterminismError", "NonDeterminismWarning",
           "WorkflowInstanceIntrospector", "WorkflowIntrospector", "assert_rolled_back",
           "assert_step_trace", "introspect_workflow", "introspect_workflow_instance",
           "load_test_project"]
