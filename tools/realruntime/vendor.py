#!/usr/bin/env python3
"""Vendor the Python packages a Worker needs into its ``python_modules/`` folder.

- ``workers-runtime-sdk==1.9.5`` (the official Python SDK; workerd uses the vendored copy for
  compat dates >= 2026-04-21), installed with ``pip install --no-deps --target``.
- this repository's ``src/workflows_saga``, copied (wrangler reads ``python_modules/`` with
  ``readdir``: a symlinked directory is not followed, so it must be a real copy).

This is the offline stand-in for ``pywrangler sync``, which downloads a Pyodide cross-build
environment from GitHub. For a project with a ``pyproject.toml`` (as
``examples/transfer-project``) it vendors what ``[project] dependencies`` declares, which may
only be ``workflows-saga``, and the SDK only if the compat date in ``wrangler.toml`` needs it.

The test Workers (``tests/e2e/worker``, ``tests/differential/worker``) also get the trace code
they share, ``tests/realruntime_worker_common/worker_trace.py``, copied into their ``src/``.

Usage: ``python3 tools/realruntime/vendor.py [PROJECT_DIR ...]``; with no argument it vendors
the e2e Worker (``tests/e2e/worker``) and the repository root (for ``wrangler deploy``, where
only the SDK is needed: ``src/workflows_saga`` already sits next to ``src/entry.py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SDK_REQUIREMENT = "workers-runtime-sdk==1.9.5"
SDK_VERSION = "1.9.5"
PACKAGE_SRC = REPO / "src" / "workflows_saga"
E2E_WORKER = REPO / "tests" / "e2e" / "worker"
DIFFERENTIAL_WORKER = REPO / "tests" / "differential" / "worker"
WORKER_COMMON = REPO / "tests" / "realruntime_worker_common"
# from this compat date on, workerd imports the Python SDK from python_modules/
SDK_VENDORED_FROM = "2026-04-21"
# the distributions this script can vendor without an index: name -> source folder
LOCAL_DISTRIBUTIONS = {"workflows-saga": PACKAGE_SRC}


class VendorError(RuntimeError):
    """The project asks for something this script cannot vendor offline."""


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


def sync_file(source: Path, target_dir: Path) -> bool:
    """Copy one file into ``target_dir`` unless an identical copy is there; True if it changed."""
    target = target_dir / source.name
    data = source.read_bytes()
    if target.is_file() and target.read_bytes() == data:
        return False
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return True


def sync_worker_common(worker_dir: Path) -> None:
    """Copy the shared test-Worker modules (trace store, JSON helpers) into ``worker_dir/src``."""
    for source in sorted(WORKER_COMMON.glob("*.py")):
        sync_file(source, worker_dir / "src")


def vendor(project_dir: Path, *, with_package: bool = True) -> Path:
    python_modules = project_dir / "python_modules"
    install_sdk(python_modules)
    if with_package:
        sync_package(python_modules)
    if project_dir in (E2E_WORKER, DIFFERENTIAL_WORKER):
        sync_worker_common(project_dir)
    return python_modules


def _distribution_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise VendorError(f"cannot read the requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _compatibility_date(project_dir: Path) -> str:
    config = project_dir / "wrangler.toml"
    if not config.is_file():
        raise VendorError(f"{config} not found (this script reads wrangler.toml only)")
    return str(tomllib.loads(config.read_text())["compatibility_date"])


def vendor_declared(project_dir: Path) -> Path:
    """Vendor the ``[project] dependencies`` of ``project_dir/pyproject.toml``, as ``pywrangler sync`` would."""
    pyproject = tomllib.loads((project_dir / "pyproject.toml").read_text())
    requirements = pyproject.get("project", {}).get("dependencies", [])
    python_modules = project_dir / "python_modules"
    for requirement in requirements:
        name = _distribution_name(requirement)
        source = LOCAL_DISTRIBUTIONS.get(name)
        if source is None:
            raise VendorError(
                f"{project_dir / 'pyproject.toml'} depends on {requirement!r}: this script only "
                f"vendors {sorted(LOCAL_DISTRIBUTIONS)} from this repository; use `pywrangler sync`"
            )
        python_modules.mkdir(parents=True, exist_ok=True)
        sync_package(python_modules, source)
    if _compatibility_date(project_dir) >= SDK_VENDORED_FROM:
        install_sdk(python_modules)
    return python_modules


def main(argv: list[str]) -> int:
    try:
        if argv:
            for d in argv:
                project = Path(d).resolve()
                declared = (project / "pyproject.toml").is_file()
                print(vendor_declared(project) if declared else vendor(project))
        else:
            print(vendor(E2E_WORKER))
            print(vendor(REPO, with_package=False))
    except VendorError as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
