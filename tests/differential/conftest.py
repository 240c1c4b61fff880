"""The differential tier: the workflows of ``worker/src/saga_scenarios.py`` run both under
workerd + wrangler's local Workflows engine (one ``wrangler dev`` per module, offline) and under
``workflows_emulator``; the tests compare what each recorded.

Prerequisite: ``python3 tools/realruntime/setup.py`` (as for tests/e2e). The fixture copies the
vendored packages of tests/e2e/worker into ``worker/python_modules`` (no network) and re-syncs
``src/workflows_saga`` and the shared ``worker_trace.py``. When wrangler cannot start, every
test using it fails (never skips).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from realruntime_support import TERMINAL, JsonClient, wrangler_dev

HERE = Path(__file__).resolve().parent
WORKER_DIR = HERE / "worker"
WORKER_CONFIG = WORKER_DIR / "wrangler.local.toml"


class Worker(JsonClient):
    """HTTP client for the differential Worker (see worker/src/worker.py)."""

    def start(self, workflow: str, params: dict[str, Any]) -> str:
        return str(self._call("POST", f"/start/{workflow}", params)["id"])

    def status(self, workflow: str, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/status/{workflow}/{instance_id}")
        return result

    def trace(self, instance_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/trace/{instance_id}")
        return result

    def terminate_with_rollback(self, workflow: str, instance_id: str) -> None:
        self._call("POST", f"/terminate/{workflow}/{instance_id}", {})

    def wait(self, workflow: str, instance_id: str, timeout: float = 45.0) -> dict[str, Any]:
        result: dict[str, Any] = self.poll(
            lambda: self.status(workflow, instance_id), lambda s: s["status"] in TERMINAL,
            f"instance {instance_id} never finished", timeout)
        return result


def _vendor_worker(vendor: ModuleType) -> None:
    vendor.vendor(vendor.E2E_WORKER)  # cached; the SDK is installed there by setup.py
    target = WORKER_DIR / "python_modules"
    if not vendor.sdk_installed(target):
        shutil.copytree(
            vendor.E2E_WORKER / "python_modules",
            target,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "workflows_saga"),
        )
    vendor.sync_package(target)
    vendor.sync_worker_common(WORKER_DIR)


@pytest.fixture(scope="module")
def workerd() -> Iterator[Worker]:
    with wrangler_dev(WORKER_CONFIG, _vendor_worker) as url:
        yield Worker(url)
