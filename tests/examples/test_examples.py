"""Every example runs: the bundled saga, and the README's test file as a user would copy it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from readme_blocks import write_approval_project

REPO = Path(__file__).resolve().parents[2]


def test_transfer_saga_example_prints_the_rollback_in_reverse_start_order() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "transfer_saga.py")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    effects = out.split("== side effects, in order ==")[1].split("== final status ==")[0]
    assert [line.strip() for line in effects.strip().splitlines()] == [
        "hold 25 on alice",
        "debit 25 from alice",
        "credit attempt 1 to bob",
        "reverse credit (output=None, because: account bob is closed)",
        "refund deb-1",
        "release hold-1",
    ]
    assert "ROLLBACK_COMPLETE" in out
    assert "'rollback': {'outcome': 'complete', 'error': None}" in out


def test_readme_approval_test_file_runs_verbatim_in_a_fresh_project(tmp_path: Path) -> None:
    write_approval_project(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
