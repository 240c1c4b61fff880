"""`lazy_exports`: a package's names loaded from their modules on first use (PEP 562).

The read-only CLI starts in a fraction of a second because importing a package loads none
of what it re-exports until a name is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str],
                 namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` from the module ``homes[name]``
    (relative, as ``".client"``), kept in ``namespace`` (the package's globals) once loaded."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home, package), name)
        namespace[name] = value
        return value

    return __getattr__
