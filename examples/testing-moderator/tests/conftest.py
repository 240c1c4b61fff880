"""The project under test, as vitest-pool-workers gives ``env`` and ``exports`` to JS tests."""

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest_asyncio

from workflows_emulator.devserver.worker_fetch import fetch_handler
from workflows_emulator.project import load_project, open_runtime
from workflows_emulator.workers_shim.http import Request

PROJECT = Path(__file__).resolve().parents[1]


@pytest_asyncio.fixture
async def worker(tmp_path: Path) -> AsyncIterator[SimpleNamespace]:
    """``worker.env`` (the bindings) and ``worker.fetch(url)`` (the default export's fetch)."""
    async with open_runtime(load_project(PROJECT), tmp_path / "state", clock="virtual") as rt:
        handler = fetch_handler(rt)
        assert handler is not None

        async def fetch(url: str):
            return await handler(Request(url))

        yield SimpleNamespace(env=rt.env, fetch=fetch)
