#!/usr/bin/env python3
"""Vendor the Python packages a Worker needs into its ``python_modules/`` folder.

- ``workers-runtime-sdk==1.9.5`` (the official Python SDK; workerd uses the vendored copy for
  compat dates >= 2026-04-21), installed with ``pip install --no-deps --target``.
- this repository's ``src/workflows_saga``, copied (wrangler reads ``python_modules/`` with
  ``readdir``: a symlinked directory is not followed, so it must be a real copy).

Usage: ``python3 tools/realruntime/vendor.py [PROJECT_DIR ...]``; with no argument it vendors
the e2e Worker (``tests/e2e/worker``) and the repository root (for ``wrangler deploy``, where
only the SDK is needed: ``src/workflows_saga`` already sits next to ``src/entry.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SDK_REQUIREMENT = "workers-runtime-sdk==1.9.5"
SDK_VERSION = "1.9.5"
PACKAGE_SRC = REPO / "src" / "workflows_saga"
E2E_WORKER = REPO / "tests" / "e2e" / "worker"


def sdk_installed(python_modules: Path) -> bool:
    return (python_modules / f"workers_runtime_sdk-{SDK_VERSION}.dist-info").is_dir() and (
        python_modules / "workers" / "workflows.js"
    ).is_file()


def install_sdk(python_modules: Path, *, python: str = sys.executable) -> None:
    """``pip install --no-deps --target python_modules workers-runtime-sdk==1.9.5`` (cached)."""
    if sdk_installed(python_modules):
        return
    python_modules.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-compile",
            "--upgrade",
            "--target",
            str(python_modules),
            SDK_REQUIREMENT,
        ],
        check=True,
    )
    for cache in python_modules.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def _ignore(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))]


def sync_package(python_modules: Path, source: Path = PACKAGE_SRC) -> bool:
    """Copy ``source`` into ``python_modules``; return True if anything changed."""
    target = python_modules / source.name
    wanted = {
        p.relative_to(source): p.read_bytes()
        for p in source.rglob("*")
        if p.is_file() and not _ignore("", [p.name]) and "__pycache__" not in p.parts
    }
    if target.is_dir():
        current = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
        if current == wanted:
            return False
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_ignore)
    return True


def vendor(project_dir: Path, *, with_package: bool = True) -> Path:
    python_modules = project_dir / "python_modules"
    install_sdk(python_modules)
    if with_package:
        sync_package(python_modules)
    return python_modules


def main(argv: list[str]) -> int:
    if argv:
        for d in argv:
            print(vendor(Path(d).resolve()))
    else:
        print(vendor(E2E_WORKER))
        print(vendor(REPO, with_package=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
