"""examples/transfer-project as a Python Worker project: it declares ``workflows-saga`` the
Python Workers way (pyproject ``dependencies``, ``workers-py`` as a dev dependency), and once
vendored, ``wrangler deploy --dry-run`` (the pinned wrangler, offline) ships the binding with it.

``pywrangler sync`` cannot run offline (it downloads a Pyodide cross-build environment from
GitHub), so ``tools/realruntime/vendor.py`` vendors the declared dependencies instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from realruntime_support import REPO, load_tool

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "examples" / "transfer-project"
PACKAGE = REPO / "src" / "workflows_saga"


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_example_project_declares_the_binding_as_a_python_worker_dependency() -> None:
    pyproject = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"] == ["workflows-saga"]
    assert pyproject["dependency-groups"]["dev"] == ["workers-py"]


def test_vendored_example_project_ships_workflows_saga_in_a_deploy_dry_run(tmp_path: Path) -> None:
    project = tmp_path / "transfer-project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("python_modules", "__pycache__", ".wrangler"))
    vendor = load_tool("vendor")
    modules = vendor.vendor_declared(project)
    # compatibility_date 2026-03-01 is before 2026-04-21: workerd's built-in SDK, nothing vendored for it
    assert sorted(p.name for p in modules.iterdir()) == ["workflows_saga"]

    tools = load_tool("wrangler_dev")
    tools.check_prerequisites()
    env = dict(os.environ, PATH=os.pathsep.join([str(tools.NODE_BIN), os.environ.get("PATH", "")]),
               WRANGLER_SEND_METRICS="false", CI="true", NO_COLOR="1", FORCE_COLOR="0")
    out = tmp_path / "dry-run"
    result = subprocess.run(
        [str(tools.NODE_BIN / "node"), str(tools.WRANGLER), "deploy", "--dry-run", "--outdir", str(out)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vendored Modules" in result.stdout
    assert "--dry-run: exiting now." in result.stdout
    assert (out / "entry.py").read_text() == (EXAMPLE / "src" / "entry.py").read_text()
    assert _files(out / "python_modules" / "workflows_saga") == _files(PACKAGE)


def test_vendoring_refuses_a_dependency_it_cannot_provide_offline(tmp_path: Path) -> None:
    project = tmp_path / "other-project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("python_modules", "__pycache__"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["workflows-saga"]', '["workflows-saga", "httpx>=0.27"]'))
    vendor = load_tool("vendor")
    with pytest.raises(vendor.VendorError, match=r"depends on 'httpx>=0\.27'.*use `pywrangler sync`"):
        vendor.vendor_declared(project)
