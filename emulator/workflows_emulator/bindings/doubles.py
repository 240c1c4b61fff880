"""Test doubles for bindings: one mechanism for the dev server, the CLI and pytest.

A *doubles module* is a Python file that defines ``make_doubles(project)`` returning a
mapping of binding name to the object ``env.<NAME>`` should be. It can supply a binding the
emulator does not emulate (``AI``, ``VECTORIZE``, a queue producer …) or replace an emulated
one. The key ``"fetch"`` is special: an ``async def (request) -> Response`` that answers every
outbound ``fetch()`` instead of the network.

Where it comes from, first match wins:
- pytest and the Python API: ``doubles={...}`` (a mapping) or ``doubles="path.py"``;
- the CLI and the dev server: ``--doubles path.py``;
- otherwise ``emulator_doubles.py`` next to the wrangler file, when it exists.

Example ``emulator_doubles.py``:
    >>> class FakeAi:                                            # doctest: +SKIP
    ...     async def run(self, model, inputs):
    ...         return {"response": "a cat"}
    >>> def make_doubles(project):                               # doctest: +SKIP
    ...     return {"AI": FakeAi()}
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ProjectConfigError
from ..output_gate import open_gate
from ..workers_shim.rpc import python_from_rpc

if TYPE_CHECKING:
    from ..project import Project

DOUBLES_FILE = "emulator_doubles.py"
FACTORY = "make_doubles"
FETCH = "fetch"

DoublesSource = Mapping[str, Any] | str | Path | None


def load_doubles(project: Project, source: DoublesSource) -> dict[str, Any]:
    """The doubles for ``project``: from a mapping, a doubles module, or the default file.

    Raises:
        ProjectConfigError: the file is missing, fails to import, lacks ``make_doubles``, or
            returns something other than a mapping of binding names the project declares.
    """
    if isinstance(source, Mapping):
        doubles = dict(source)
        origin = "the doubles mapping"
    else:
        path = Path(source) if source is not None else project.root / DOUBLES_FILE
        if source is None and not path.is_file():
            return {}
        doubles, origin = _from_file(project, path.resolve()), str(path)
    _check(project, doubles, origin)
    return doubles


def _from_file(project: Project, path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProjectConfigError(
            f"{path}: doubles module not found; pass the path of a .py file that defines "
            f"{FACTORY}(project)")
    name = f"_wf_doubles_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProjectConfigError(f"{path}: cannot import the doubles module; is it a .py file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ProjectConfigError(
            f"{path}: importing the doubles module failed: {type(exc).__name__}: {exc}; "
            "fix the module") from exc
    factory = getattr(module, FACTORY, None)
    if not callable(factory):
        raise ProjectConfigError(
            f"{path}: the doubles module defines no {FACTORY}(project) function; add one "
            'that returns {"BINDING": object, ...}')
    made = factory(project)
    if not isinstance(made, Mapping):
        raise ProjectConfigError(
            f"{path}: {FACTORY}(project) returned {type(made).__name__}, not a mapping of "
            "binding name to double; return a dict")
    return dict(made)


def _check(project: Project, doubles: dict[str, Any], origin: str) -> None:
    known = set(project.bindings.names()) | {w.binding for w in project.workflows}
    for name in doubles:
        if name == FETCH:
            if not callable(doubles[name]):
                raise ProjectConfigError(
                    f'{origin}: "{FETCH}" must be an async function (request) -> Response')
            continue
        if name not in known:
            declared = ", ".join(sorted(known)) or "none"
            raise ProjectConfigError(
                f'{origin}: a double for "{name}", but {project.config_path} declares no binding '
                f"of that name (declared: {declared}); declare it in the wrangler file or drop "
                "the double")


class DoubleBinding:
    """A double as ``env.NAME``: what its methods return reaches the Worker as the Python SDK
    hands over a binding's JS results (dicts with attribute access, ``result.response``)."""

    def __init__(self, double: Any) -> None:
        object.__setattr__(self, "_double", double)

    def __getattr__(self, name: str) -> Any:
        value = getattr(object.__getattribute__(self, "_double"), name)
        if not callable(value):
            return python_from_rpc(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            open_gate()  # held step results are on disk before the double acts
            result = value(*args, **kwargs)
            if inspect.isawaitable(result):
                return _converted(result)
            return python_from_rpc(result)

        return call

    def __repr__(self) -> str:
        return f"DoubleBinding({object.__getattribute__(self, '_double')!r})"


async def _converted(result: Awaitable[Any]) -> Any:
    return python_from_rpc(await result)


def as_binding(double: Any) -> Any:
    """``double`` as the Worker sees it: plain values as they are, objects behind `DoubleBinding`."""
    if isinstance(double, str | int | float | bool | dict | list) or double is None:
        return python_from_rpc(double)
    return DoubleBinding(double)


def missing_double_error(project: Project, table: str, name: str) -> ProjectConfigError:
    """The load error for a binding the emulator does not emulate and no double supplies."""
    return ProjectConfigError(
        f'{project.config_path}: binding "{name}" in [{table}] is not emulated by '
        f"workflows-emulator; supply a double: in {project.root / DOUBLES_FILE} define "
        f'{FACTORY}(project) returning {{"{name}": your_fake}} (or pass --doubles FILE, or '
        "doubles= in Python); see the README's Bindings section")
