"""The two distributions built from this repository, as a user receives them.

- ``workflows-saga`` (the root ``pyproject.toml``): only ``workflows_saga``, no dependencies,
  since a Worker vendors it into Pyodide;
- ``workflows-emulator`` (``emulator/pyproject.toml``): ``workflows_emulator``, pinned to the
  binding of the same version, with the ``workflows-emulator`` script and the pytest plugin.

Both wheels are built with the venv's hatchling (``pip wheel --no-build-isolation``), read with
``importlib.metadata``, then installed from that folder alone (``--no-index``) into a fresh venv
where the README's test samples (approval flow, waits and assertions, a Worker project through
the ``workflows_project`` fixture, ``load_test_project``) must pass, without a warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from readme_blocks import README_TESTS, write_readme_samples
from workflows_emulator.devserver.timeline_page import STATIC_FILES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _run(cmd: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class Wheel:
    """A built wheel, read through ``importlib.metadata`` without installing it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with zipfile.ZipFile(path) as zf:
            self.names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in self.names if n.split("/")[0].endswith(".dist-info"))
        self.dist_info = dist_info
        self.dist = metadata.PathDistribution(zipfile.Path(path, dist_info + "/"))  # type: ignore[arg-type]

    @property
    def runtime_requirements(self) -> list[str]:
        """``Requires-Dist`` entries outside any extra."""
        return [r for r in self.dist.requires or [] if "extra ==" not in r]

    def top_level(self) -> set[str]:
        return {n.split("/")[0] for n in self.names}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
          "--no-build-isolation", "--wheel-dir", out, REPO, REPO / "emulator"])
    yield out


def _wheel(wheelhouse: Path, project: str) -> Wheel:
    found = sorted(wheelhouse.glob(f"{project.replace('-', '_')}-*.whl"))
    assert len(found) == 1, f"expected one {project} wheel in {wheelhouse}, found {found}"
    return Wheel(found[0])


def test_binding_wheel_holds_only_the_binding_and_depends_on_nothing(wheelhouse: Path) -> None:
    wheel = _wheel(wheelhouse, "workflows-saga")
    assert wheel.dist.metadata["Name"] == "workflows-saga"
    assert wheel.dist.version == VERSION
    assert wheel.top_level() == {"workflows_saga", wheel.dist_info}
    assert "workflows_saga/py.typed" in wheel.names
    assert "workflows_saga/_pyodide.py" in wheel.names
    assert wheel.dist.requires is None, f"the binding must declare no Requires-Dist: {wheel.dist.requires}"
    assert list(wheel.dist.entry_points) == []


def test_emulator_wheel_holds_the_emulator_pinned_to_the_binding(wheelhouse: Path) -> None:
    wheel = _wheel(wheelhouse, "workflows-emulator")
    assert wheel.dist.metadata["Name"] == "workflows-emulator"
    assert wheel.dist.version == VERSION
    assert wheel.top_level() == {"workflows_emulator", wheel.dist_info}
    for module in ("py.typed", "cli/__init__.py", "pytest_plugin.py", "devserver/__init__.py",
                   "engine.py", "workers_shim/__init__.py", "testing/__init__.py"):
        assert f"workflows_emulator/{module}" in wheel.names
    # the timeline page's hand-written files, served from the installed package
    for static in STATIC_FILES:
        assert f"workflows_emulator/devserver/static/{static}" in wheel.names
    # compare's Node driver, run from the installed package
    assert "workflows_emulator/porting/js_driver.mjs" in wheel.names
    # the binding pinned; the dev tool's own libraries (HTTP server, JSONC) by range
    assert sorted(wheel.runtime_requirements) == ["aiohttp>=3.9", "json5>=0.9", "orjson>=3.9",
                                                 "python-dotenv>=1.0", f"workflows-saga=={VERSION}"]
    entry_points = {(ep.group, ep.name): ep.value for ep in wheel.dist.entry_points}
    assert entry_points == {
        ("console_scripts", "workflows-emulator"): "workflows_emulator.cli:main",
        ("pytest11", "workflows_emulator"): "workflows_emulator.pytest_plugin",
    }


def test_wheels_installed_in_a_fresh_venv_run_the_readme_test_samples(
    wheelhouse: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    # the emulator's third-party libraries from the index, at the versions running this suite;
    # then our two wheels from the wheelhouse only: never a same-named project from an index
    _run([*pip, "install", "--quiet", f"aiohttp=={metadata.version('aiohttp')}",
          f"json5=={metadata.version('json5')}", f"orjson=={metadata.version('orjson')}",
          f"python-dotenv=={metadata.version('python-dotenv')}"])
    _run([*pip, "install", "--quiet", "--no-index", "--find-links", wheelhouse, "workflows-emulator"])
    # the test runner the README asks for, at the versions running this suite
    _run([*pip, "install", "--quiet", f"pytest=={metadata.version('pytest')}",
          f"pytest-asyncio=={metadata.version('pytest-asyncio')}"])

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    where = _run([python, "-c", "import workflows_emulator, workflows_saga; "
                  "print(workflows_emulator.__file__); print(workflows_saga.__file__)"], env=env, cwd=tmp_path)
    for path in where.split():
        assert Path(path).is_relative_to(venv), f"imported from outside the fresh venv: {path}"
    assert "usage:" in _run([venv / "bin" / "workflows-emulator", "--help"], env=env, cwd=tmp_path)

    (tmp_path / "project").mkdir()
    project = write_readme_samples(tmp_path / "project")
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=project, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{README_TESTS} passed" in result.stdout
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    printed = _run([python, "load_project_sample.py"], cwd=project, env=env)
    assert printed.strip() == "{'account': 'bob', 'amount': 10}"
