#!/usr/bin/env python3
"""Stand-in for the workerd binary that miniflare runs (``MINIFLARE_WORKERD_PATH``).

It execs the real workerd with the same arguments, adding
``--pyodide-bundle-disk-cache-dir=DIR`` right after the ``serve`` sub-command so that the
Pyodide release ``dev`` is read from ``DIR/pyodide_dev.capnp.bin`` instead of downloaded.

Environment:
    WORKFLOWS_SAGA_WORKERD: the real workerd (default: the one under node_modules).
    WORKFLOWS_SAGA_PYODIDE_BUNDLE_DIR: the folder holding the bundle (default: .build/pyodide).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_WORKERD = REPO / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
DEFAULT_BUNDLE_DIR = REPO / ".build" / "pyodide"


def workerd_args(argv: list[str], bundle_dir: str) -> list[str]:
    """``argv`` (without the program) with the bundle-dir flag inserted after ``serve``."""
    args = list(argv)
    if "serve" in args and not any(a.startswith("--pyodide-bundle-disk-cache-dir") for a in args):
        at = args.index("serve") + 1
        args.insert(at, f"--pyodide-bundle-disk-cache-dir={bundle_dir}")
    return args


def main() -> None:
    workerd = os.environ.get("WORKFLOWS_SAGA_WORKERD") or str(DEFAULT_WORKERD)
    bundle_dir = os.environ.get("WORKFLOWS_SAGA_PYODIDE_BUNDLE_DIR") or str(DEFAULT_BUNDLE_DIR)
    os.execv(workerd, [workerd, *workerd_args(sys.argv[1:], bundle_dir)])


if __name__ == "__main__":
    main()
