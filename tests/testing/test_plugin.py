"""The pytest plugin in fresh projects, run as a user runs pytest (a subprocess each): the
``workflows_project`` fixture finds its wrangler file, async tests need no ``asyncio_mode``,
and nothing warns."""

from __future__ import annotations

from pathlib import Path

from testing.projects import run_pytest, write_file, write_shop

SHOP_TESTS = '''
    import asyncio

    import pytest
    import pytest_asyncio

    from workflows_emulator.testing import assert_step_trace


    @pytest_asyncio.fixture(scope="module")
    async def module_loop():  # the project's own async fixture, wider than a function
        return asyncio.get_running_loop()


    @pytest.mark.asyncio
    async def test_own_fixture(module_loop):  # its loop is its own, as with the option unset
        assert module_loop is not asyncio.get_running_loop()


    async def test_found_beside_the_tests(workflows_project):
        assert workflows_project.config.name == "shop"
        response = await workflows_project.fetch("/orders", method="POST", json={"order": "mug"})
        inst = await workflows_project.workflows["describe-order"].get((await response.json())["id"])
        assert (await inst.wait())["output"] == {"order": "mug", "text": "a fine mug"}
        assert_step_trace(inst, ["describe", "let it rest", "file"])


    class Blunt:
        async def run(self, model, inputs):
            return {"response": "blunt"}


    @pytest.mark.workflows_project("../other/wrangler.toml", doubles={"AI": Blunt()})
    async def test_marker_names_another_project(workflows_project):
        assert workflows_project.config.name == "other"
        inst = await workflows_project.workflows["describe-order"].create(params={"order": "x"})
        assert (await inst.wait())["output"]["text"] == "blunt"


    @pytest.mark.workflows_project(clock="real")
    async def test_marker_options_without_a_path(workflows_project):
        assert type(workflows_project.clock).__name__ == "RealClock"
'''


def test_a_fresh_project_runs_async_project_tests_without_configuration_or_warnings(
        tmp_path: Path) -> None:
    write_shop(tmp_path)
    other = write_shop(tmp_path / "other", doubles=False)
    other.write_text(other.read_text().replace('name = "shop"', 'name = "other"'))
    write_file(tmp_path / "tests" / "test_shop.py", SHOP_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # strict asyncio mode, nothing of ours
    run = run_pytest(tmp_path)
    assert run.returncode == 0, run.output
    assert "4 passed" in run.output, run.output
    assert "warning" not in run.output.lower(), run.output
    assert "asyncio_default_fixture_loop_scope=fixture-scope" in run.output  # kept as it was


def test_a_loop_scope_the_project_sets_is_kept(tmp_path: Path) -> None:
    write_shop(tmp_path)
    write_file(tmp_path / "test_one.py", '''
        async def test_loads(workflows_project):
            assert workflows_project.config.name == "shop"
    ''')
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    run = run_pytest(tmp_path)
    assert run.returncode == 0 and "1 passed" in run.output, run.output
    assert "asyncio_default_fixture_loop_scope=function" in run.output


def test_the_ini_option_names_the_wrangler_file_relative_to_the_ini_file(tmp_path: Path) -> None:
    config = write_shop(tmp_path / "worker")
    config.rename(tmp_path / "worker" / "wrangler.staging.toml")
    write_file(tmp_path / "tests" / "deep" / "test_ini.py", '''
        async def test_loads(workflows_project):
            assert workflows_project.config.config_path.name == "wrangler.staging.toml"
    ''')
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nworkflows_project = worker/wrangler.staging.toml\n")
    run = run_pytest(tmp_path, "-q")
    assert run.returncode == 0 and "1 passed" in run.output, run.output


def test_no_wrangler_file_says_how_to_name_one(tmp_path: Path) -> None:
    write_file(tmp_path / "tests" / "test_none.py", '''
        async def test_loads(workflows_project):
            pass
    ''')
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = run_pytest(tmp_path, "-q")
    assert run.returncode == 1 and "1 error" in run.output, run.output
    assert "found no wrangler.toml / wrangler.jsonc / wrangler.json in" in run.output
    assert '@pytest.mark.workflows_project("path/to/wrangler.toml")' in run.output
