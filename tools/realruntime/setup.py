#!/usr/bin/env python3
"""Prepare the real-runtime test tier from a fresh clone (idempotent, offline but for registries).

Steps:
1. ``npm ci`` (pinned wrangler 4.164.0, pyodide 314.0.6, Node 22 from the ``node`` package),
   skipped when ``package-lock.json`` is unchanged since the last successful run;
2. build ``.build/pyodide/pyodide_dev.capnp.bin`` from ``node_modules/pyodide`` (cached);
3. vendor ``workers-runtime-sdk==1.9.5`` and ``src/workflows_saga`` into the e2e Worker's
   ``python_modules/``, and the SDK into the root ``python_modules/`` (for ``wrangler deploy``).

Usage: ``python3 tools/realruntime/setup.py [--force]``
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make the `tools` package importable
    sys.path.insert(0, str(REPO))

from tools.realruntime import build_pyodide_bundle, vendor  # noqa: E402

NPM_STAMP = REPO / ".build" / "npm-ci.stamp"


def _lock_digest() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((REPO / name).read_bytes())
    return h.hexdigest()


def npm_ci(force: bool) -> bool:
    """Run ``npm ci`` unless node_modules already matches the lock file; True if it ran."""
    digest = _lock_digest()
    installed = (REPO / "node_modules" / "node" / "bin" / "node").exists() and (
        REPO / "node_modules" / "wrangler" / "package.json"
    ).exists()
    if not force and installed and NPM_STAMP.is_file() and NPM_STAMP.read_text() == digest:
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("setup: npm is not on PATH (any Node >= 18 with npm can run `npm ci`)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REPO, check=True)
    NPM_STAMP.parent.mkdir(parents=True, exist_ok=True)
    NPM_STAMP.write_text(digest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="prepare the real-runtime (e2e) test tier")
    parser.add_argument("--force", action="store_true", help="redo every step")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    ran = npm_ci(args.force)
    t1 = time.monotonic()
    print(f"setup: npm ci {'done' if ran else 'up to date'} ({t1 - t0:.1f}s)")
    bundle = build_pyodide_bundle.build(force=args.force)
    t2 = time.monotonic()
    print(f"setup: {bundle.relative_to(REPO)} ({t2 - t1:.1f}s)")
    for project, with_package in ((vendor.E2E_WORKER, True), (REPO, False)):
        modules = vendor.vendor(project, with_package=with_package)
        print(f"setup: vendored {modules.relative_to(REPO)}")
    print(f"setup: ready in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
