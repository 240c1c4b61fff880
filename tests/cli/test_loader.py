"""Every bad-config error of the project loader names the file, the key and the fix."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from emulator_support import open_files_under
from workflows_emulator import ProjectConfigError
from workflows_emulator.project import load_project, open_runtime_sync

from .conftest import run_cli

ENTRY = """
from workers import WorkflowEntrypoint

class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return 1
"""
GOOD = """
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]
[[workflows]]
name = "flow"
binding = "FLOW"
class_name = "Flow"
"""


def _project(tmp_path: Path, toml: str, entry: str = ENTRY, name: str = "wrangler.toml") -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(entry))
    (tmp_path / name).write_text(textwrap.dedent(toml))
    return tmp_path / name


CASES = [
    ("malformed", "main = \n", "malformed TOML"),
    ("no-main", GOOD.replace('main = "src/entry.py"', ""), 'string "main" field but got nothing'),
    ("main-missing", GOOD.replace("src/entry.py", "src/nope.py"), "does not exist; fix the path"),
    ("no-python-flag", GOOD.replace('"python_workers"', '"nodejs_compat"'),
     "`python_workers` compat flag not specified in wrangler config"),
    ("no-class", GOOD.replace('class_name = "Flow"', ""),
     'should have a string "class_name" field but got nothing'),
    ("bad-name", GOOD.replace('name = "flow"', 'name = "-flow"'),
     'key "name" = \'-flow\' is invalid'),
    ("bad-binding", GOOD.replace('binding = "FLOW"', 'binding = "MY-FLOW"'),
     "is not a valid binding name"),
    ("dup-binding", GOOD + '[[workflows]]\nname = "two"\nbinding = "FLOW"\nclass_name = "Flow"\n',
     'binding "FLOW" is used twice'),
    ("script-name", GOOD + 'script_name = "other"\n', "binds a workflow of another Worker"),
    ("bad-limit", GOOD + "[workflows.limits]\nsteps = 0\n",
     '"limits.steps" = 0 must be a positive'),
    ("old-date", GOOD.replace("2026-03-01", "2024-01-01"), "compatibility date of 2024-10-22"),
    ("no-workflows-flag", GOOD.replace("2026-03-01", "2025-01-01"),
     'need the "python_workflows" flag'),
    ("bad-date", GOOD.replace("2026-03-01", "soon"), 'key "compatibility_date"'),
    ("var-clash", GOOD + '[vars]\nFLOW = "x"\n', 'key "vars.FLOW" has the same name'),
]


@pytest.mark.parametrize(("case", "toml", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_reported_with_file_key_and_fix(tmp_path: Path, case: str, toml: str,
                                                      expected: str) -> None:
    path = _project(tmp_path, toml)
    with pytest.raises(ProjectConfigError) as info:
        load_project(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message
    assert ";" in message  # followed by what to do


def test_missing_class_in_module(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD.replace('class_name = "Flow"', 'class_name = "Nope"'))
    project = load_project(path)
    with (
        pytest.raises(ProjectConfigError, match=r'class_name" = "Nope", but entry.py defines no '
                      r"such class.*export class Nope\(WorkflowEntrypoint\) or fix class_name"),
        open_runtime_sync(project, tmp_path / "state"),
    ):
        pass


def test_entry_module_import_error(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD, entry="import not_a_module_anywhere\n")
    with (
        pytest.raises(ProjectConfigError, match=r"importing .*entry\.py failed with "
                      r"ModuleNotFoundError.*fix the module"),
        open_runtime_sync(load_project(path), tmp_path / "state"),
    ):
        pass


def test_malformed_jsonc_and_missing_file(tmp_path: Path) -> None:
    path = _project(tmp_path, '{\n  "main": "src/entry.py",\n  oops\n}', name="wrangler.jsonc")
    with pytest.raises(ProjectConfigError, match=r"malformed JSON at line 3 column 3"):
        load_project(path)
    with pytest.raises(ProjectConfigError, match=r"no wrangler\.toml or wrangler\.jsonc here"):
        load_project(tmp_path / "src")


def test_jsonc_with_comments_loads_and_env_has_bindings_and_vars(tmp_path: Path) -> None:
    path = _project(tmp_path, """
    // a comment
    {
      "name": "j", "main": "src/entry.py", /* block */ "compatibility_date": "2026-03-01",
      "compatibility_flags": ["python_workers"],
      "vars": {"URL": "http://x//y"},
      "workflows": [{"name": "flow", "binding": "FLOW", "class_name": "Flow",
                     "limits": {"steps": 30000}},],
    }
    """, name="wrangler.jsonc")
    project = load_project(tmp_path)
    assert project.config_path == path
    assert project.vars == {"URL": "http://x//y"}
    assert project.workflows[0].step_limit == 30000
    assert "exceeds the production maximum of 25,000" in project.warnings[0]
    assert "workers" not in sys.modules
    with open_runtime_sync(project, tmp_path / "state") as rt:
        assert sys.modules["workers"].__name__ == "workflows_emulator.workers_shim"
        assert rt.env.URL == "http://x//y"
        assert type(rt.env.FLOW).__name__ == "WorkflowBinding"
        with pytest.raises(AttributeError, match=r"env has no binding or var 'NOPE' \(defined in "
                           r".*wrangler.jsonc: FLOW, URL\); add it under \[vars\]"):
            _ = rt.env.NOPE
    assert "workers" not in sys.modules


def test_cli_prints_config_errors_and_exits_1(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD.replace('binding = "FLOW"', ""))
    r = run_cli("workflows", "list", "--config", str(path), "--persist-to", str(tmp_path / "s"))
    assert r.code == 1
    assert r.err.startswith("✘ [ERROR] ")
    assert 'should have a string "binding" field but got nothing; add binding = "MY_WORKFLOW"' \
        in r.err


def test_open_runtime_sync_closes_its_files_on_exit(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, GOOD))
    with open_runtime_sync(project, tmp_path / "state"):
        assert open_files_under(tmp_path / "state")
    assert open_files_under(tmp_path / "state") == []
