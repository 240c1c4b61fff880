"""A pytest plugin: the ``workflows_emulator`` fixture, an `Emulator` per test.

Installed with the package (entry point ``pytest11``). Needs pytest-asyncio for async tests.

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


@_fixture  # type: ignore[untyped-decorator]
async def workflows_emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    """An `Emulator` with the virtual clock and its state in the test's tmp_path."""
    async with Emulator(tmp_path / "workflows-state") as emulator:
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
