"""`load_test_project`: an unmodified Worker project in a test, with env, fetch and workflows.

Real projects on disk (the bundled transfer project, and a shop project with KV, an AI
binding supplied by a double, and a fetch handler), real SQLite state, the virtual clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.projects import write_shop
from workflows_emulator import EmulatorError, ProjectConfigError
from workflows_emulator.testing import assert_rolled_back, load_test_project
from workflows_emulator.workers_shim.http import Request


async def test_fetch_starts_a_transfer_whose_saga_rolls_back(transfer_project: Path) -> None:
    async with load_test_project(transfer_project) as project:
        assert project.env.CREDIT_LIMIT == "1000"
        response = await project.fetch("/transfers", method="POST",
                                       json={"from": "alice", "to": "bob", "amount": 5000})
        assert response.status == 200
        started = await response.json()
        inst = await project.workflows["transfer"].get(started["id"])
        status = await inst.wait()
        assert status["status"] == "errored"
        assert status["error"]["message"] == "bob's bank refused 5000: over the limit of 1000"
        assert_rolled_back(inst, ["credit destination", "debit source", "reserve funds"],
                           outcomes=["success", "success", "success"])
        again = await project.fetch(f"/transfers/{inst.id}")
        assert (await again.json())["rollback"] == {"outcome": "complete", "error": None}
        assert project.workflow("TRANSFER") is project.workflows["transfer"]
        state = project.state_dir
        assert any(state.rglob("*.sqlite")), "instances are kept in SQLite files"
    assert not state.exists(), "a temporary state directory is removed on exit"


async def test_the_doubles_module_beside_the_config_supplies_the_ai_binding(
        shop: Path, tmp_path: Path) -> None:
    async with load_test_project(shop, state_dir=tmp_path / "state") as project:
        response = await project.fetch("/orders", method="POST", json={"order": "teapot"})
        body = await response.json()
        assert body["ct"] == "application/json"
        inst = await project.workflows["describe-order"].get(body["id"])
        await inst.wait_for_sleep("let it rest")
        assert project.env.AI.prompts == ["teapot"]
        assert (await project.fetch("/orders/teapot")).status == 404  # not filed yet
        await project.advance("1 day")
        assert (await inst.status())["output"] == {"order": "teapot", "text": "a fine teapot"}
        filed = await project.fetch("/orders/teapot")
        assert (filed.status, await filed.text()) == (200, "a fine teapot")
    assert (tmp_path / "state" / "kv").is_dir(), "KV is the emulator's store, kept in state"


async def test_doubles_given_as_a_mapping_win_over_the_default_module(shop: Path) -> None:
    class Terse:
        async def run(self, model: str, inputs: dict[str, str]) -> dict[str, str]:
            return {"response": "ok"}

    async with load_test_project(shop, doubles={"AI": Terse()}) as project:
        inst = await project.workflow("DESCRIBE").create(params={"order": "cup"})
        assert (await inst.wait())["output"] == {"order": "cup", "text": "ok"}


async def test_a_project_needing_a_double_without_one_says_so(tmp_path: Path) -> None:
    config = write_shop(tmp_path / "bare", doubles=False)
    with pytest.raises(ProjectConfigError, match=r'binding "AI" in \[ai\] is not emulated'):
        async with load_test_project(config):
            pass


async def test_fetch_takes_a_request_and_lets_the_handler_s_error_through(shop: Path) -> None:
    async with load_test_project(shop) as project:
        response = await project.fetch(Request("https://shop.example/hi", method="GET"))
        assert await response.json() == {"greeting": "hello", "url": "https://shop.example/hi"}
        relative = await (await project.fetch("/hi?x=1")).json()
        assert relative["url"] == "http://localhost:8787/hi?x=1"
        with pytest.raises(RuntimeError, match="the handler broke"):
            await project.fetch("/boom")
        with pytest.raises(TypeError, match="body= or json="):
            await project.fetch("/orders", method="POST", body="{}", json={})


async def test_a_project_without_a_fetch_handler_says_what_to_define(tmp_path: Path) -> None:
    from worker_projects import write_worker_project

    config = write_worker_project(tmp_path / "p", """
        from workers import WorkflowEntrypoint

        class Flow(WorkflowEntrypoint):
            async def run(self, event, step):
                return 1
    """)
    async with load_test_project(config) as project:
        assert (await (await project.workflows["flow"].create()).wait())["output"] == 1
        with pytest.raises(EmulatorError, match=r"no fetch handler: define class Default"):
            await project.fetch("/")
