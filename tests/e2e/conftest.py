"""The real-runtime tier: one ``wrangler dev`` (workerd + wrangler's local Workflows engine,
offline) serving ``tests/e2e/worker`` for every test of a module.

Prerequisite: ``python3 tools/realruntime/setup.py`` (npm ci, Pyodide bundle, vendoring). The
fixture re-syncs ``src/workflows_saga`` (and the shared ``worker_trace.py``) into the Worker
before starting, so edits are picked up. When wrangler cannot start, every test using it fails (never skips).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from realruntime_support import REPO, TERMINAL, JsonClient, wrangler_dev

WORKER_CONFIG = REPO / "tests" / "e2e" / "worker" / "wrangler.local.toml"


class Worker(JsonClient):
    """HTTP client for the e2e Worker's small API (see tests/e2e/worker/src/worker.py)."""

    def start(self, scenario: str, **params: Any) -> str:
        return str(self._call("POST", "/start", {"scenario": scenario, **params})["id"])

    def status(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/status/{instance_id}")
        return result

    def trace(self, instance_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/trace/{instance_id}")
        return result

    def events(self, instance_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/events/{instance_id}")
        return result

    def terminate(self, instance_id: str, *, rollback: bool) -> Any:
        return self._call("POST", f"/terminate/{instance_id}?rollback={int(rollback)}", {})

    def wait(
        self, instance_id: str, statuses: frozenset[str] = TERMINAL, timeout: float = 45.0
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.poll(
            lambda: self.status(instance_id), lambda s: s["status"] in statuses,
            f"instance {instance_id} never reached {sorted(statuses)}", timeout)
        return result

    def wait_trace(self, instance_id: str, predicate: Any, timeout: float = 30.0) -> Any:
        return self.poll(lambda: self.trace(instance_id), predicate,
                         f"trace of {instance_id} never matched", timeout)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    # Re-syncs src/workflows_saga and worker_trace.py into the Worker, so edits are picked up.
    with wrangler_dev(WORKER_CONFIG, lambda vendor: vendor.vendor(vendor.E2E_WORKER)) as url:
        yield Worker(url)
