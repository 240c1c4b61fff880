"""The differential tier: the workflows of ``worker/src/saga_scenarios.py`` run both under
workerd + wrangler's local Workflows engine (one ``wrangler dev`` per module, offline) and under
``workflows_emulator``; the tests compare what each recorded.

Prerequisite: ``python3 tools/realruntime/setup.py`` (as for tests/e2e). The fixture copies the
vendored packages of tests/e2e/worker into ``worker/python_modules`` (no network) and re-syncs
``src/workflows_saga``. When wrangler cannot start, every test using it fails (never skips).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools" / "realruntime"
HERE = Path(__file__).resolve().parent
WORKER_DIR = HERE / "worker"
WORKER_CONFIG = WORKER_DIR / "wrangler.local.toml"
TERMINAL = frozenset({"complete", "errored", "terminated"})


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_realruntime_{name}", TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Worker:
    """HTTP client for the differential Worker (see worker/src/worker.py)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            exc.close()
            raise AssertionError(f"{method} {path} -> {exc.code}: {detail}") from None

    def start(self, workflow: str, params: dict[str, Any]) -> str:
        return str(self._call("POST", f"/start/{workflow}", params)["id"])

    def status(self, workflow: str, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/status/{workflow}/{instance_id}")
        return result

    def trace(self, instance_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/trace/{instance_id}")
        return result

    def wait(self, workflow: str, instance_id: str, timeout: float = 45.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status = self.status(workflow, instance_id)
        while status["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise AssertionError(f"instance {instance_id} still {status['status']!r}")
            time.sleep(0.1)
            status = self.status(workflow, instance_id)
        return status


def _vendor_worker() -> None:
    vendor = _load("vendor")
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


@pytest.fixture(scope="module")
def workerd() -> Iterator[Worker]:
    build = _load("build_pyodide_bundle")
    wrangler_dev = _load("wrangler_dev")
    build.build()  # cached: a no-op unless node_modules/pyodide changed
    _vendor_worker()
    dev = wrangler_dev.WranglerDev(WORKER_CONFIG)
    dev.start()  # raises (and so fails every test) when wrangler cannot start
    try:
        print(f"wrangler dev ready on {dev.url} in {dev.startup_seconds:.1f}s")
        yield Worker(dev.url)
    finally:
        dev.stop()
