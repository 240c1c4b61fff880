"""A pytest plugin: the ``workflows_emulator`` fixture, an `Emulator` per test.

Installed with the package (entry point ``pytest11``). Needs pytest-asyncio for async tests.
The marker ``@pytest.mark.workflows_emulator(**options)`` passes options to the `Emulator`
(``max_concurrency=1``, ``clock="real"``, ``step_limit=...``).

Example:
    >>> async def test_transfer_rolls_back(workflows_emulator):     # doctest: +SKIP
    ...     wf = workflows_emulator.workflow(Transfer, name="transfer")
    ...     inst = await wf.create(params={"amount": 10})
    ...     assert (await inst.wait())["rollback"]["outcome"] == "complete"
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .emulator import Emulator

try:
    import pytest_asyncio

    _fixture: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - async fixtures need pytest-asyncio
    _fixture = pytest.fixture


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "workflows_emulator(**options): options for the test's Emulator "
        "(e.g. max_concurrency=1, clock='real', step_limit=100)")


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


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> None:
    """Run async tests that take `workflows_emulator` under asyncio without configuration.

    Marked before pytest-asyncio looks at them; otherwise a project whose pytest-asyncio is
    not in auto mode gets a misleading "async def functions are not natively supported".
    """
    import inspect

    if not (inspect.iscoroutinefunction(obj) and collector.funcnamefilter(name)):
        return
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    marks = getattr(obj, "pytestmark", [])
    if "workflows_emulator" in params and not any(m.name == "asyncio" for m in marks):
        pytest.mark.asyncio(obj)
