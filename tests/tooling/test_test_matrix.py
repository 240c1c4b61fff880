"""tools/test_matrix.py (``make test-matrix``): how it finds interpreters, reports a missing
one, and that the command it runs fails a suite that leaks a resource."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from realruntime_support import load_script

REPO = Path(__file__).resolve().parents[2]


matrix = load_script(REPO / "tools" / "test_matrix.py", "_test_matrix_tool")
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_finds_a_cpython_of_the_running_version() -> None:
    python = matrix.find_interpreter(RUNNING)
    assert python is not None, f"no CPython {RUNNING} among {matrix.candidates(RUNNING)}"
    assert matrix.probe(python) == ("CPython", RUNNING)


def test_a_missing_version_is_reported_and_fails_unless_allowed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MATRIX_ALLOW_MISSING", raising=False)
    assert matrix.main(["--versions", "3.99"]) == 1
    out, err = capsys.readouterr()
    assert "CPython 3.99  MISSING" in out
    assert "MISSING CPython 3.99 (set MATRIX_ALLOW_MISSING=1 to allow)" in err

    monkeypatch.setenv("MATRIX_ALLOW_MISSING", "1")
    assert matrix.main(["--versions", "3.99"]) == 0
    assert "allowed by MATRIX_ALLOW_MISSING=1" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_the_suite_command_fails_a_test_that_leaks_a_file(tmp_path: Path, version: str) -> None:
    # the repository's pytest configuration (filterwarnings = error) on a test that drops an open
    # file inside a reference cycle: only the garbage collector notices, after the test
    (tmp_path / "test_leak.py").write_text(
        "class Holder:\n    pass\n\n\n"
        "def test_leaks():\n    h = Holder()\n    h.me = h\n    h.f = open(__file__)\n"
    )
    cmd = matrix.suite_command(version, Path(sys.executable), [
        "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)])
    assert ("-W" in cmd) is (version == "3.13")
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0, result.stdout
    assert "ResourceWarning: unclosed file" in result.stdout + result.stderr
