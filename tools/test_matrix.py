#!/usr/bin/env python3
"""Run the fast suite (``pytest -m "not e2e and not browser"``) under every supported CPython: 3.11 to 3.13.

Each version gets its own venv, ``.build/venv-3.X/``, with both distributions installed
editable (``pip install -e . -e ./emulator[test]``), re-created when either pyproject or the
interpreter changes. Interpreters are looked up in pyenv's versions folder (``$PYENV_ROOT``,
default ``~/.pyenv``: the newest ``3.X.N``), then as ``python3.X`` on ``PATH``.

A version that is not found is reported and fails the run, unless ``MATRIX_ALLOW_MISSING=1``
(it is still reported).

Leaked resources: pytest's unraisable-exception hook turns a ``ResourceWarning`` raised in a
finalizer (an unclosed file; on 3.13 also an unclosed sqlite connection) into
``PytestUnraisableExceptionWarning``, which ``filterwarnings = error`` makes a failure, also when
only the garbage collector notices it after the test (checked with pytest 9.2:
tests/tooling/test_test_matrix.py). The 3.13 run adds ``-W error::ResourceWarning`` to the
interpreter as well: it replaces the interpreter's own default for that category (ignore) for
code that runs outside pytest's warning capture.

Usage: ``python3 tools/test_matrix.py [--versions 3.11,3.13] [-- PYTEST_ARGS...]``
(``make test-matrix``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / ".build"
VERSIONS = ("3.11", "3.12", "3.13")
STRICT_RESOURCES = frozenset({"3.13"})  # versions run with -W error::ResourceWarning
PYTEST_ARGS = ("-m", "not e2e and not browser", "-p", "no:cacheprovider")


@dataclass
class Outcome:
    version: str
    interpreter: Path | None
    status: str  # "passed", "failed", "missing", "setup failed"
    seconds: float = 0.0
    detail: str = ""


def probe(python: str | Path) -> tuple[str, str] | None:
    """``(implementation, "3.X")`` of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import platform, sys; "
             "print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (parts[0], parts[1]) if out.returncode == 0 and len(parts) == 2 else None


def candidates(version: str) -> list[Path]:
    """Where CPython ``version`` may be, best first."""
    found: list[Path] = []
    versions_dir = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    pattern = re.compile(rf"^{re.escape(version)}\.(\d+)$")  # plain CPython builds only
    if versions_dir.is_dir():
        builds = [(int(m.group(1)), d) for d in versions_dir.iterdir() if (m := pattern.match(d.name))]
        found += [d / "bin" / "python3" for _, d in sorted(builds, reverse=True)]
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(Path(on_path))
    return found


def find_interpreter(version: str) -> Path | None:
    for python in candidates(version):
        if probe(python) == ("CPython", version):
            return python
    return None


def _fingerprint(python: Path) -> str:
    h = hashlib.sha256(str(python.resolve()).encode())
    for name in ("pyproject.toml", "emulator/pyproject.toml"):
        h.update((REPO / name).read_bytes())
    return h.hexdigest()


def ensure_venv(version: str, python: Path) -> Path:
    """``.build/venv-<version>`` with both distributions installed editable; its python."""
    venv = BUILD / f"venv-{version}"
    stamp = venv / ".installed"
    vpy = venv / "bin" / "python"
    key = _fingerprint(python)
    if stamp.is_file() and stamp.read_text() == key and vpy.exists():
        return vpy
    subprocess.run([str(python), "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(vpy), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", str(REPO), "-e", f"{REPO / 'emulator'}[test]"], check=True, cwd=REPO)
    stamp.write_text(key)
    return vpy


def suite_command(version: str, vpy: Path, extra: list[str]) -> list[str]:
    strict = ["-W", "error::ResourceWarning"] if version in STRICT_RESOURCES else []
    return [str(vpy), *strict, "-m", "pytest", *PYTEST_ARGS, *extra]


def run_version(version: str, extra: list[str]) -> Outcome:
    python = find_interpreter(version)
    if python is None:
        looked = ", ".join(str(c) for c in candidates(version)) or "nothing found"
        return Outcome(version, None, "missing",
                       detail=f"no CPython {version} (pyenv versions dir, python{version} on PATH; tried: {looked})")
    started = time.monotonic()
    print(f"\n== test-matrix: CPython {version} ({python}) ==", flush=True)
    try:
        vpy = ensure_venv(version, python)
    except subprocess.CalledProcessError as exc:
        return Outcome(version, python, "setup failed", time.monotonic() - started, f"{exc}")
    cmd = suite_command(version, vpy, extra)
    print("$ " + " ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=REPO).returncode
    status = "passed" if code == 0 else "failed"
    return Outcome(version, python, status, time.monotonic() - started, "" if code == 0 else f"pytest exit code {code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", default=",".join(VERSIONS), help="comma-separated, e.g. 3.11,3.13")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    allow_missing = os.environ.get("MATRIX_ALLOW_MISSING") == "1"
    outcomes = [run_version(v, args.pytest_args) for v in args.versions.split(",") if v]

    print("\n== test-matrix summary ==")
    for o in outcomes:
        where = str(o.interpreter) if o.interpreter else "-"
        print(f"  CPython {o.version:<5} {o.status.upper():<13} {o.seconds:6.1f}s  {where}  {o.detail}".rstrip())
    failed = [o for o in outcomes if o.status in ("failed", "setup failed")]
    missing = [o for o in outcomes if o.status == "missing"]
    if missing:
        names = ", ".join(o.version for o in missing)
        verdict = "allowed by MATRIX_ALLOW_MISSING=1" if allow_missing else "set MATRIX_ALLOW_MISSING=1 to allow"
        print(f"test-matrix: MISSING CPython {names} ({verdict})", file=sys.stderr)
    return 1 if failed or (missing and not allow_missing) else 0


if __name__ == "__main__":
    sys.exit(main())
