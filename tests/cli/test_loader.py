"""Every bad-config error of the project loader names the file, the key and the fix."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from emulator_support import open_files_under
from worker_projects import ONE_WORKFLOW_TOML
from workflows_emulator import ProjectConfigError
from workflows_emulator.project import load_project, open_runtime, open_runtime_sync

from .conftest import EXAMPLE, ROOT, run_cli

ENTRY = """
from workers import WorkflowEntrypoint

class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return 1
"""
GOOD = ONE_WORKFLOW_TOML


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


def _import_error(tmp_path: Path, entry: str, files: dict[str, str] | None = None) -> str:
    """The message of the error opening a project whose entry module is ``entry``."""
    path = _project(tmp_path, GOOD, entry=entry)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    with (
        pytest.raises(ProjectConfigError) as info,
        open_runtime_sync(load_project(path), tmp_path / "state"),
    ):
        pass
    message = str(info.value)
    assert message.startswith(f'{path}: key "main": importing src/entry.py failed at ')
    return message


def test_entry_module_import_error_names_the_file_and_line(tmp_path: Path) -> None:
    message = _import_error(tmp_path, "import os\nimport not_a_module_anywhere\n")
    assert message.endswith("failed at src/entry.py:2: ModuleNotFoundError: No module named "
                            "'not_a_module_anywhere'; fix the module")


def test_an_error_in_a_module_the_entry_imports_names_that_module(tmp_path: Path) -> None:
    message = _import_error(tmp_path, "import loader_helper_a\n", {"src/loader_helper_a.py": """
        X = 1

        raise ImportError("cannot import name 'Y' from 'z'")
        """})
    assert "failed at src/loader_helper_a.py:4: ImportError: cannot import name 'Y' from 'z'; " \
        in message


def test_an_error_inside_a_vendored_package_points_at_the_user_s_import(tmp_path: Path) -> None:
    message = _import_error(tmp_path, "\nimport loader_vendored_b\n",
                            {"python_modules/loader_vendored_b.py": "raise RuntimeError('boom')\n"})
    assert "failed at src/entry.py:2: RuntimeError: boom; fix the module" in message


def test_sys_exit_while_importing_is_an_error_not_an_exit(tmp_path: Path) -> None:
    message = _import_error(tmp_path, "import sys\n\n\nsys.exit(3)\n")
    assert message.endswith("failed at src/entry.py:4: SystemExit: 3; fix the module: it must "
                            "not call sys.exit() when imported")
    # a command that runs the Worker's code imports it (list and describe only read state)
    r = run_cli("workflows", "trigger", "flow", "--config", str(tmp_path / "wrangler.toml"),
                "--persist-to", str(tmp_path / "s"))
    assert r.code == 1
    assert r.err.startswith("✘ [ERROR] ") and "SystemExit: 3" in r.err


def test_a_syntax_error_names_its_file_and_line(tmp_path: Path) -> None:
    message = _import_error(tmp_path, "x = 1\n\ndef broken(:\n    pass\n")
    assert "failed at src/entry.py:3: SyntaxError: " in message
    other = tmp_path / "other"
    other.mkdir()
    message = _import_error(other, "import loader_helper_c\n",
                            {"src/loader_helper_c.py": "y = (\n"})
    assert "failed at src/loader_helper_c.py:1: SyntaxError: " in message


def test_malformed_jsonc_names_the_file_and_line(tmp_path: Path) -> None:
    path = _project(tmp_path, '{\n  "main": "src/entry.py",\n  "vars": {"A": 1 "B": 2}\n}',
                    name="wrangler.jsonc")  # a comma missing before "B"
    with pytest.raises(ProjectConfigError) as info:
        load_project(path)
    assert str(info.value) == (f"{path}: malformed JSON at line 3 column 19: unexpected "
                               "'\"'; fix the syntax")
    path.write_text('{\n  "main": "src/entry.py",\n  "vars": {"A": "x"\n')
    with pytest.raises(ProjectConfigError, match=r"malformed JSON at line 4 column 1: unexpected "
                       r"end of input; fix the syntax"):
        load_project(path)


def test_missing_config_file(tmp_path: Path) -> None:
    _project(tmp_path, GOOD)
    with pytest.raises(ProjectConfigError, match=r"no wrangler\.toml or wrangler\.jsonc here"):
        load_project(tmp_path / "src")


def test_jsonc_with_comments_loads_and_env_has_bindings_and_vars(tmp_path: Path) -> None:
    path = _project(tmp_path, """
    // a comment with "quotes" and a trailing comma,
    {
      "name": "j", "main": "src/entry.py", /* block, } */ "compatibility_date": "2026-03-01",
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
                           r".*wrangler.jsonc: FLOW, URL\); declare it in the wrangler file"):
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


# -- what the loader reads, and what it warns about --------------------------------------------


def test_unknown_keys_are_warned_about_with_the_closest_known_key(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD.replace(
        'main = "src/entry.py"', 'main = "src/entry.py"\nworkers_de = false\nmy_own_thing = 1'
    ) + 'schedule = "0 * * * *"\n[workflows.limits]\nstep = 5\n')
    project = load_project(path)
    assert project.warnings == (
        f'unknown key "workers_de" in {path}; did you mean "workers_dev"?',
        f'unknown key "my_own_thing" in {path}; wrangler does not know it and the emulator '
        "ignores it",
        f'unknown key "schedule" in [[workflows]] entry #1 of {path}; did you mean "schedules"?',
        f'unknown key "step" in [workflows.limits] of [[workflows]] entry #1 of {path}; did you '
        'mean "steps"?',
    )
    assert project.workflows[0].step_limit is None  # the misspelt limit is not applied


def test_an_error_caused_by_a_misspelt_key_mentions_it(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD.replace("compatibility_date", "compatability_date"))
    with pytest.raises(ProjectConfigError) as info:
        load_project(path)
    assert str(info.value) == (
        f'{path}: key "compatibility_date" = \'\' must be a date like "2025-10-01"; set it. '
        f'Also: unknown key "compatability_date" in {path}; did you mean "compatibility_date"?')


def test_cli_prints_warnings_once_to_stderr(tmp_path: Path) -> None:
    path = _project(tmp_path, 'compatability_flags = ["x"]\n' + GOOD)
    r = run_cli("workflows", "list", "--config", str(path), "--persist-to", str(tmp_path / "s"))
    assert r.code == 0, r.err
    assert r.err.count('unknown key "compatability_flags"') == 1
    assert f'▲ [WARNING] unknown key "compatability_flags" in {path}; did you mean ' \
        '"compatibility_flags"?' in r.err
    assert "compatability" not in r.out


REPO_CONFIGS = sorted([ROOT / "wrangler.toml", *ROOT.glob("examples/*/wrangler*.toml"),
                       *ROOT.glob("tests/*/worker/wrangler*.toml")])


def test_the_repository_s_own_wrangler_files_give_no_warnings(tmp_path: Path) -> None:
    assert len(REPO_CONFIGS) >= 4
    for config in REPO_CONFIGS:
        assert load_project(config).warnings == (), config
    r = run_cli("workflows", "list", "--config", str(EXAMPLE), "--persist-to",
                str(tmp_path / "state"), "--json")
    assert r.code == 0 and r.err == "", r.err


def test_a_config_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD)
    good = path.read_bytes()
    path.write_bytes(b'# ok\nname = "caf\xe9"\n' + good)  # Latin-1, as an old editor saves it
    with pytest.raises(ProjectConfigError) as info:
        load_project(path)
    assert str(info.value) == (f"{path}: not valid UTF-8 at byte 16 (line 2): invalid "
                               "continuation byte; save the file as UTF-8")
    path.write_bytes('# ok\nname = "café"\n'.encode() + good)
    assert load_project(path).name == "café"


def test_main_pointing_at_a_folder_says_so(tmp_path: Path) -> None:
    path = _project(tmp_path, GOOD.replace('"src/entry.py"', '"src"'))
    with pytest.raises(ProjectConfigError) as info:
        load_project(path)
    assert str(info.value) == (
        f'{path}: key "main" = \'src\' points at {tmp_path.resolve() / "src"}, which is a folder; '
        'point "main" at the Worker\'s entry .py file, such as "src/entry.py"')


@pytest.mark.parametrize("field", ["name", "binding"])
def test_a_trailing_newline_in_a_workflow_name_or_binding_is_refused(tmp_path: Path,
                                                                      field: str) -> None:
    value = {"name": "flow", "binding": "FLOW"}[field]
    path = _project(tmp_path, GOOD.replace(f'{field} = "{value}"', f'{field} = "{value}\\n"'))
    with pytest.raises(ProjectConfigError, match=f'key "{field}" = \'{value}\\\\n\''):
        load_project(path)


def test_a_json_config_is_read_like_jsonc(tmp_path: Path) -> None:
    _project(tmp_path, """
    {"main": "src/entry.py", "compatibility_date": "2026-03-01",
     "compatibility_flags": ["python_workers"],
     "workflows": [{"name": "flow", "binding": "FLOW", "class_name": "Flow"}]}
    """, name="wrangler.json")
    project = load_project(tmp_path)
    assert project.config_path.name == "wrangler.json"
    assert [w.binding for w in project.workflows] == ["FLOW"]
    assert project.warnings == ()


def test_dev_vars_override_vars_as_wrangler_dev_reads_them(tmp_path: Path) -> None:
    from worker_projects import write_worker_project

    config = write_worker_project(tmp_path, "")
    config.write_text(config.read_text() + '\n[vars]\nAPI_URL = "https://prod"\nMODE = "live"\n')
    (tmp_path / ".env").write_text("MODE=from-dot-env\n")
    assert load_project(config).vars == {"API_URL": "https://prod", "MODE": "from-dot-env"}
    (tmp_path / ".dev.vars").write_text('API_TOKEN="s3cret"\n# a comment\nMODE=dev\n')
    # .dev.vars wins over [vars]; .env is not read when .dev.vars exists
    assert load_project(config).vars == {"API_URL": "https://prod", "MODE": "dev",
                                         "API_TOKEN": "s3cret"}


async def test_two_projects_in_one_process_each_import_their_own_modules(tmp_path: Path) -> None:
    from worker_projects import write_worker_project

    outputs = []
    for name in ("first", "second"):
        root = tmp_path / name
        write_worker_project(root, """
            from config import NAME
            from workers import WorkflowEntrypoint

            class Flow(WorkflowEntrypoint):
                async def run(self, event, step):
                    return NAME
        """)
        (root / "src" / "config.py").write_text(f"NAME = {name!r}\n")
        async with open_runtime(load_project(root), tmp_path / f"state-{name}",
                                clock="virtual") as rt:
            outputs.append((await (await rt.workflows["flow"].create()).wait())["output"])
    assert outputs == ["first", "second"]
