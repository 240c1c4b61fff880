"""What the real-runtime tiers (tests/e2e, tests/differential) share: the tools, an HTTP
client for a test Worker, and one ``wrangler dev`` (workerd + the local Workflows engine,
offline) started and stopped around a module.

Prerequisite: ``python3 tools/realruntime/setup.py`` (npm ci, Pyodide bundle, vendoring);
``make test`` runs it. When wrangler cannot start, the fixture raises, so every test that
uses it fails: these tiers never skip.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "realruntime"
TERMINAL = frozenset({"complete", "errored", "terminated"})


def load_tool(name: str) -> ModuleType:
    """Import ``tools/realruntime/<name>.py`` (the tools are scripts, not a package)."""
    return load_script(TOOLS / f"{name}.py", f"_realruntime_{name}")


def load_script(path: Path, module_name: str) -> ModuleType:
    """Import the script at ``path`` as ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class JsonClient:
    """A small JSON-over-HTTP client for a test Worker on loopback."""

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

    @staticmethod
    def poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str,
             timeout: float = 45.0) -> Any:
        """Call ``read`` every 0.1 s until ``done`` accepts its result."""
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: last seen {value!r}")
            time.sleep(0.1)


@contextmanager
def wrangler_dev(config: Path, prepare: Callable[[ModuleType], None]) -> Iterator[str]:
    """Build the Pyodide bundle (cached), ``prepare(vendor_tool)``, serve ``config``; yield its URL."""
    load_tool("build_pyodide_bundle").build()  # a no-op unless node_modules/pyodide changed
    prepare(load_tool("vendor"))
    dev = load_tool("wrangler_dev").WranglerDev(config)
    dev.start()  # raises (and so fails every test) when wrangler cannot start
    try:
        print(f"wrangler dev ready on {dev.url} in {dev.startup_seconds:.1f}s")
        yield dev.url
    finally:
        dev.stop()
