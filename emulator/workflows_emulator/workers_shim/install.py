"""Installs the stand-in as ``workers`` in ``sys.modules``, only while a project runs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType

_NAMES = ("workers", "workers.workflows")


@contextlib.contextmanager
def installed(*, implicit_dependencies: bool = True) -> Iterator[ModuleType]:
    """Make ``import workers`` resolve to the stand-in; restore what was there on exit.

    Workflow classes defined meanwhile get the SDK's implicit-dependency ``step.do`` or, with
    ``implicit_dependencies=False``, its older ``depends=`` form.

    Example:
        >>> with installed():                     # doctest: +SKIP
        ...     from workers import WorkflowEntrypoint
    """
    from .. import workers_shim
    from . import entrypoints
    from . import workflows as workflows_mod

    saved = {name: sys.modules.get(name) for name in _NAMES}
    saved_mode = entrypoints.implicit_dependencies
    sys.modules["workers"] = workers_shim
    sys.modules["workers.workflows"] = workflows_mod
    entrypoints.implicit_dependencies = implicit_dependencies
    try:
        yield workers_shim
    finally:
        entrypoints.implicit_dependencies = saved_mode
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
