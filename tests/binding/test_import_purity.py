"""Importing the binding must not pull in the runtime (js, pyodide, workers) or sqlite3."""

import subprocess
import sys

import workflows_saga


def test_import_pulls_in_no_runtime_or_sqlite_module() -> None:
    code = (
        "import sys, workflows_saga, workflows_saga.backend\n"
        "from workflows_saga import WorkflowEntrypoint\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'js', 'pyodide', 'workers', 'sqlite3', '_sqlite3'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_entrypoint_outside_pyodide_is_plain() -> None:
    cls = workflows_saga.WorkflowEntrypoint
    assert cls.__module__ == "workflows_saga._entrypoint"
    assert "workers" not in sys.modules or sys.modules["workers"].__name__ == "workers"
