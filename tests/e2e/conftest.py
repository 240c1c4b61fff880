"""The real-runtime tier: one ``wrangler dev`` (workerd + wrangler's local Workflows engine,
offline) serving ``tests/e2e/worker`` for every test of a module.

Prerequisite: ``python3 tools/realruntime/setup.py`` (npm ci, Pyodide bundle, vendoring). The
fixture re-syncs ``src/workflows_saga`` into the Worker before starting, so edits are picked
up. When wrangler cannot start, every test using it fails (never skips).
"""

from __future__ import annotations

import importlib.util
import json
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
WORKER_CONFIG = REPO / "tests" / "e2e" / "worker" / "wrangler.local.toml"
TERMINAL = frozenset({"complete", "errored", "terminated"})


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_realruntime_{name}", TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Worker:
    """HTTP client for the e2e Worker's small API (see tests/e2e/worker/src/worker.py)."""

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
        deadline = time.monotonic() + timeout
        status = self.status(instance_id)
        while status["status"] not in statuses:
            if time.monotonic() > deadline:
                raise AssertionError(f"instance {instance_id} still {status['status']!r}")
            time.sleep(0.1)
            status = self.status(instance_id)
        return status

    def wait_trace(self, instance_id: str, predicate: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            trace = self.trace(instance_id)
            if predicate(trace):
                return trace
            if time.monotonic() > deadline:
                raise AssertionError(f"trace of {instance_id} never matched: {trace}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    build = _load("build_pyodide_bundle")
    vendor = _load("vendor")
    wrangler_dev = _load("wrangler_dev")
    build.build()  # cached: a no-op unless node_modules/pyodide changed
    vendor.vendor(vendor.E2E_WORKER)  # keeps python_modules/workflows_saga in step with src/
    dev = wrangler_dev.WranglerDev(WORKER_CONFIG)
    dev.start()  # raises (and so fails every test) when wrangler cannot start
    try:
        print(f"wrangler dev ready on {dev.url} in {dev.startup_seconds:.1f}s")
        yield Worker(dev.url)
    finally:
        dev.stop()
