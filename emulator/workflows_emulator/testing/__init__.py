"""Testing helpers for workflows on the emulator (the pytest plugin uses them too).

- `load_test_project`: an unmodified Worker project (wrangler file, ``from workers import``
  modules) on a temporary state directory, with ``env``, ``fetch`` and its workflows; the
  pytest fixture ``workflows_project`` wraps it.
- `assert_step_trace`, `assert_rolled_back`: assertions whose failures show a diff.
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

from .assertions import assert_rolled_back, assert_step_trace
from .project_fixture import LoadedProject, load_test_project

__all__ = ["LoadedProject", "assert_rolled_back", "assert_step_trace", "load_test_project"]
