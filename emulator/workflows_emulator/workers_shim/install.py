"""Installs the stand-in as ``workers`` in ``sys.modules``, only while a project runs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType

_NAMES = ("workers", "workers.workflows")


@contextlib.contextmanager
def installed() -> Iterator[ModuleType]:
    """Make ``import workers`` resolve to the stand-in; restore what was there on exit.

    Example:
        >>> with installed():                     # doctest: +SKIP
        ...     from workers import WorkflowEntrypoint
    """
    from .. import workers_shim
    from . import workflows as workflows_mod

    saved = {name: sys.modules.get(name) for name in _NAMES}
    sys.modules["workers"] = workers_shim
    sys.modules["workers.workflows"] = workflows_mod
    try:
        yield workers_shim
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
