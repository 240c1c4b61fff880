"""Importing the binding must not pull in the runtime (js, pyodide, workers) or sqlite3."""

import subprocess
import sys

import workflows_saga

RUNTIME = {"js", "pyodide", "workers", "sqlite3", "_sqlite3"}


def loaded_after(code: str, roots: set[str]) -> list[str]:
    """Modules under ``roots`` that a fresh interpreter has loaded after running ``code``."""
    probe = code + (f"\nimport sys\nprint(','.join(sorted(m for m in sys.modules "
                    f"if m.split('.')[0] in {sorted(roots)!r})))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_pulls_in_no_runtime_or_sqlite_module() -> None:
    code = "import workflows_saga, workflows_saga.backend\nfrom workflows_saga import WorkflowEntrypoint"
    assert loaded_after(code, RUNTIME) == []


def test_the_fake_backend_imports_neither_sqlite_nor_the_emulator() -> None:
    code = (
        "import asyncio\n"
        "from workflows_saga import WorkflowEntrypoint\n"
        "from workflows_saga.testing import MemoryBackend\n"
        "class F(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        return await step.do('a', lambda: 1)\n"
        "assert asyncio.run(MemoryBackend().run(F)) == 1\n"
    )
    assert loaded_after(code, RUNTIME | {"workflows_emulator"}) == []


def test_entrypoint_outside_pyodide_is_plain() -> None:
    cls = workflows_saga.WorkflowEntrypoint
    assert cls.__module__ == "workflows_saga._entrypoint"
    assert "workers" not in sys.modules or sys.modules["workers"].__name__ == "workers"
