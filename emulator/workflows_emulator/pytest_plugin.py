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
