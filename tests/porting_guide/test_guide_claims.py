"""What docs/porting.md says about Worker projects, checked on one: the binding and instance
calls of its table (as written there), the event's shape, and the official SDK class's error."""

from __future__ import annotations

from pathlib import Path

from porting_guide.guide_blocks import GUIDE
from testing.projects import write_file
from workflows_emulator.testing import load_test_project

WRANGLER = """
name = "port"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[[workflows]]
name = "saga"
binding = "WF"
class_name = "Saga"

[[workflows]]
name = "plain"
binding = "PLAIN"
class_name = "Plain"
"""

ENTRY = '''
from workers import WorkflowEntrypoint as SdkEntrypoint
from workflows_saga import WorkflowEntrypoint


class Saga(WorkflowEntrypoint):
    async def run(self, event, step):
        shape = [type(event).__name__, hasattr(event, "payload")]
        await step.do("hold", lambda: "h-1", rollback=lambda rb: None)
        approval = await step.wait_for_event("approval", "approval", timeout="1 hour")
        return {"event": shape, "approval": type(approval).__name__,
                "payload": approval["payload"]}


class Plain(SdkEntrypoint):
    async def run(self, event, step):
        try:
            await step.do("charge", lambda: 1)
        except TypeError as exc:
            return f"TypeError: {exc}"
'''


def project(root: Path) -> Path:
    write_file(root / "src" / "entry.py", ENTRY)
    return write_file(root / "wrangler.toml", WRANGLER)


def guide_text() -> str:
    return " ".join(GUIDE.read_text().split())


async def test_the_worker_column_of_the_binding_table(tmp_path: Path) -> None:
    text = guide_text()
    for call in ['await self.env.WF.create(id=..., params=...)',
                 'await self.env.WF.create_batch([{"id": ..., "params": ...}, …])',
                 'await self.env.WF.get(id)', 'await instance.terminate(rollback=True)',
                 'await instance.restart({"from": {"name": ..., "count": 1, "type": "do"}})',
                 'await instance.send_event(type="approval", payload={...})']:
        assert f"`{call}`" in text, call

    async with load_test_project(project(tmp_path)) as loaded:
        env = loaded.env
        first = await env.WF.create(id="o-1", params={"amount": 3})
        batch = await env.WF.create_batch([{"id": "o-2", "params": {}}, {"id": "o-3"}])
        assert [i.id for i in batch] == ["o-2", "o-3"]
        instance = await env.WF.get(first.id)
        await loaded.settle()
        assert (await instance.status())["status"] == "waiting"
        await instance.send_event(type="approval", payload={"ok": True})
        done = await (await loaded.workflows["saga"].get("o-1")).wait()
        assert done["output"] == {"event": ["JsDict", True], "approval": "JsDict",
                                  "payload": {"ok": True}}

        await instance.restart({"from": {"name": "hold", "count": 1, "type": "do"}})
        await loaded.settle()
        assert (await instance.status())["status"] == "waiting"
        steps = (await loaded.workflows["saga"].get("o-1")).steps()
        assert [s.name for s in steps] == ["hold", "approval"]  # from "hold": all again

        other = await env.WF.get("o-2")
        await other.pause()
        await loaded.settle()
        await other.resume()
        await other.terminate(rollback=True)
        status = await (await loaded.workflows["saga"].get("o-2")).wait()
        assert (status["status"], status["rollback"]) == (
            "terminated", {"outcome": "complete", "error": None})


async def test_the_sdk_class_has_no_call_form_as_the_guide_says(tmp_path: Path) -> None:
    async with load_test_project(project(tmp_path)) as loaded:
        made = await loaded.env.PLAIN.create()
        error = (await (await loaded.workflows["plain"].get(made.id)).wait())["output"]
    assert error.startswith("TypeError: SdkWorkflowStep.do() takes")
    assert f"`{error}`" in guide_text()
