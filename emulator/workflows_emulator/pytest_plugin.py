"""A pytest plugin: the ``workflows_emulator`` and ``workflows_project`` fixtures.

Installed with the package (entry point ``pytest11``). Needs pytest-asyncio; async tests that
take one of these fixtures run under asyncio without any configuration (no ``asyncio_mode``).

- ``workflows_emulator``: an `Emulator` per test (virtual clock, state in the test's
  tmp_path). ``@pytest.mark.workflows_emulator(**options)`` passes options to it
  (``max_concurrency=1``, ``clock="real"``, ``step_limit=...``).
- ``workflows_project``: an unmodified Worker project (`LoadedProject`: ``env``, ``fetch``,
  ``workflows``, ``advance``, ``settle``). Which wrangler file, first match wins:
  ``@pytest.mark.workflows_project("path/to/wrangler.toml", doubles=..., clock=...)`` (a
  path relative to the test file), the ini option ``workflows_project`` (relative to the
  ini file), else the nearest ``wrangler.toml``/``wrangler.jsonc``/``wrangler.json`` in the
  test file's folder or a parent, up to the rootdir.

Example:
    >>> async def test_transfer_rolls_back(workflows_emulator):     # doctest: +SKIP
    ...     wf = workflows_emulator.workflow(Transfer, name="transfer")
    ...     inst = await wf.create(params={"amount": 10})
    ...     assert (await inst.wait())["rollback"]["outcome"] == "complete"
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .emulator import Emulator
from .errors import ProjectConfigError
from .project import CONFIG_NAMES

if TYPE_CHECKING:
    from .testing.project_fixture import LoadedProject

try:
    import pytest_asyncio

    # The loop scope said explicitly: a function's loop, as the tests that use them.
    _fixture: Any = pytest_asyncio.fixture(loop_scope="function")
except ImportError:  # pragma: no cover - async fixtures need pytest-asyncio
    _fixture = pytest.fixture

FIXTURES = frozenset({"workflows_emulator", "workflows_project"})
PROJECT_INI = "workflows_project"
LOOP_SCOPE_INI = "asyncio_default_fixture_loop_scope"
PROJECT_OPTIONS = frozenset({"doubles", "clock"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(PROJECT_INI, "the wrangler file the workflows_project fixture loads, "
                  "relative to the ini file (default: the nearest one above the test file)",
                  default="")


@pytest.hookimpl(tryfirst=True)  # before pytest-asyncio's, see _keep_fixture_loop_scope
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "workflows_emulator(**options): options for the test's Emulator "
        "(e.g. max_concurrency=1, clock='real', step_limit=100)")
    config.addinivalue_line(
        "markers",
        "workflows_project(config=None, *, doubles=None, clock='virtual'): the wrangler file "
        "(relative to the test file) and options of the workflows_project fixture")
    _keep_fixture_loop_scope(config)


def _keep_fixture_loop_scope(config: pytest.Config) -> None:
    """Keep pytest-asyncio's behaviour for async fixtures without its deprecation warning.

    pytest-asyncio warns at startup (``PytestDeprecationWarning``) when
    ``asyncio_default_fixture_loop_scope`` is unset, which is every fresh project that
    installs it for these fixtures. When the project leaves it unset, the plugin sets it to
    ``"fixture-scope"``, the value pytest-asyncio documents as keeping the current behaviour
    (each async fixture's loop is its own scope): nothing changes for the project's fixtures
    and the warning is gone. A value the project sets is left alone; so are pytest-asyncio
    releases that have no such value.
    """
    try:
        from pytest_asyncio import plugin as asyncio_plugin
    except ImportError:  # pragma: no cover - async fixtures need pytest-asyncio
        return
    keep = getattr(asyncio_plugin, "_MATCH_FIXTURE_SCOPE", None)
    try:
        if keep is None or config.getini(LOOP_SCOPE_INI):
            return
    except ValueError:  # pragma: no cover - pytest-asyncio not registered (-p no:asyncio)
        return
    # pytest has no public way to default another plugin's ini value: its cache is the one
    # place getini() reads first.
    config._inicache[LOOP_SCOPE_INI] = keep


@_fixture  # type: ignore[untyped-decorator]
async def workflows_emulator(tmp_path: Path, request: pytest.FixtureRequest
                             ) -> AsyncIterator[Emulator]:
    """An `Emulator` with the virtual clock and its state in the test's tmp_path.

    Options come from the test's ``@pytest.mark.workflows_emulator(...)`` marker, if any.
    """
    marker = request.node.get_closest_marker("workflows_emulator")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise TypeError("@pytest.mark.workflows_emulator takes keyword options only, e.g. "
                        "@pytest.mark.workflows_emulator(max_concurrency=1)")
    async with Emulator(tmp_path / "workflows-state", **options) as emulator:
        yield emulator


@_fixture  # type: ignore[untyped-decorator]
async def workflows_project(tmp_path: Path, request: pytest.FixtureRequest
                            ) -> AsyncIterator[LoadedProject]:
    """The Worker project of the test's wrangler file, loaded on the virtual clock with its
    state in the test's tmp_path (see the module's docstring for which file)."""
    from .testing.project_fixture import load_test_project  # the project loader, on first use

    config, options = project_options(request)
    async with load_test_project(config, state_dir=tmp_path / "workflows-state",
                                 **options) as project:
        yield project


def project_options(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    """The wrangler file and the `load_test_project` options for ``request``'s test."""
    here = request.path.parent
    marker = request.node.get_closest_marker("workflows_project")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(options) - PROJECT_OPTIONS
    if unknown or (marker is not None and len(marker.args) > 1):
        raise TypeError("@pytest.mark.workflows_project takes a wrangler file and the "
                        f"options {sorted(PROJECT_OPTIONS)}; got {marker}")
    if isinstance(options.get("doubles"), str | Path):
        options["doubles"] = here / options["doubles"]
    if marker is not None and marker.args:
        return here / marker.args[0], options
    ini_value = request.config.getini(PROJECT_INI)
    if ini_value:
        base = request.config.inipath.parent if request.config.inipath else request.config.rootpath
        return base / str(ini_value), options
    return nearest_config(here, request.config.rootpath), options


def nearest_config(start: Path, root: Path) -> Path:
    """The wrangler file in ``start`` or the nearest parent of it, up to ``root``."""
    folder = start.resolve()
    root = root.resolve()
    while True:
        for name in CONFIG_NAMES:
            if (folder / name).is_file():
                return folder / name
        if folder == root or folder.parent == folder or not folder.is_relative_to(root):
            break
        folder = folder.parent
    raise ProjectConfigError(
        f"the workflows_project fixture found no {' / '.join(CONFIG_NAMES)} in {start} or its "
        f"parents up to the rootdir {root}; name it with @pytest.mark.workflows_project("
        f"\"path/to/wrangler.toml\") or the ini option {PROJECT_INI} = path/to/wrangler.toml")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> None:
    """Run async tests that take one of our fixtures under asyncio without configuration.

    Marked before pytest-asyncio looks at them; otherwise a project whose pytest-asyncio is
    not in auto mode gets a misleading "async def functions are not natively supported".
    """
    if not (inspect.iscoroutinefunction(obj) and collector.funcnamefilter(name)):
        return
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    marks = getattr(obj, "pytestmark", [])
    if FIXTURES & set(params) and not any(m.name == "asyncio" for m in marks):
        pytest.mark.asyncio(obj)
