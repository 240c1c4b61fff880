"""The ``workers`` stand-in: same classes the engine knows, SDK-shaped HTTP and binding objects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import workflows_saga
from workflows_emulator.project import load_project, open_runtime
from workflows_emulator.workers_shim import JsDict, Request, Response
from workflows_emulator.workers_shim.install import installed

from .conftest import EXAMPLE


def test_installed_only_inside_and_error_class_is_the_engines() -> None:
    assert "workers" not in sys.modules
    with installed():
        import workers  # type: ignore[import-not-found]
        from workers.workflows import NonRetryableError  # type: ignore[import-not-found]

        assert NonRetryableError is workflows_saga.NonRetryableError
        assert workers.Response is Response
    assert "workers" not in sys.modules and "workers.workflows" not in sys.modules


async def test_request_and_response_shapes() -> None:
    req = Request("http://h/x?y=1", method="post", headers={"Content-Type": "application/json"},
                  body='{"a": 1}')
    assert req.method == "POST" and req.url == "http://h/x?y=1"
    assert req.headers["content-type"] == "application/json"
    assert await req.json() == {"a": 1}
    with pytest.raises(OSError, match="Body already used"):
        await req.text()
    resp = Response.json({"ok": True}, status=201)  # type: ignore[arg-type]
    assert resp.status == 201 and resp.ok and resp.headers["Content-Type"] == "application/json"
    assert await resp.json() == {"ok": True}
    plain = Response("hi", headers={"x-a": "1"})
    assert plain.status == 200 and plain.status_text == "OK"
    assert await plain.text() == "hi" and plain.headers["X-A"] == "1"
    with pytest.raises(TypeError, match="Unsupported type in Response: dict"):
        Response({"a": 1})  # type: ignore[arg-type]


async def test_binding_wrapper_round_trips_and_returns_jsdicts(tmp_path: Path) -> None:
    async with open_runtime(load_project(EXAMPLE), tmp_path / "s", clock="virtual") as rt:
        binding = rt.env.TRANSFER
        with pytest.raises(TypeError, match=r"tuple cannot be sent over RPC\."):
            await binding.create(params={"bad": (1, 2)})
        made = await binding.create_batch([
            {"id": "b-1", "params": {"from": "a", "to": "b", "amount": 1}},
            {"id": "b-2", "params": {"from": "a", "to": "b", "amount": 5000}},
        ])
        assert [m.id for m in made] == ["b-1", "b-2"]
        assert await binding.create_batch([{"id": "b-1", "params": {}}]) == []
        for m in made:
            await rt.workflows["transfer"].get(m.id)
            await (await rt.workflows["transfer"].get(m.id)).wait()
        ok = await (await binding.get("b-1")).status()
        assert isinstance(ok, JsDict) and ok.status == "complete"
        assert ok.output.account == "b"
        bad = await (await binding.get("b-2")).status()
        assert bad.error.name == "NonRetryableError" and bad.rollback.outcome == "complete"


LEGACY_ENTRY = '''
from workers import WorkflowEntrypoint, WorkerEntrypoint, Response


class Legacy(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("fetch user")
        async def fetch_user():
            return "ada"

        @step.do("greet", depends=[fetch_user], concurrent=True)
        async def greet(user, ctx):
            return f"hello {user} from {ctx['step']['name']}"

        @step.do("broken")
        async def broken(needs_a_dependency):
            return 1

        try:
            await broken()
        except TypeError as exc:
            problem = str(exc)
        return [await greet(), problem]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
'''


@pytest.mark.parametrize(
    ("date", "flags", "legacy"),
    [("2025-10-01", [], True), ("2026-03-01", [], False),
     ("2025-10-01", ["python_workflows_implicit_dependencies"], False),
     ("2026-03-01", ["no_python_workflows_implicit_dependencies"], True)],
)
async def test_older_compat_dates_get_the_sdks_depends_form(
    tmp_path: Path, date: str, flags: list[str], legacy: bool
) -> None:
    project_dir = tmp_path / "proj"
    (project_dir / "src").mkdir(parents=True)
    (project_dir / "src" / "entry.py").write_text(LEGACY_ENTRY)
    all_flags = ", ".join(f'"{f}"' for f in ["python_workers", "python_workflows", *flags])
    (project_dir / "wrangler.toml").write_text(
        f'name = "legacy"\nmain = "src/entry.py"\ncompatibility_date = "{date}"\n'
        f"compatibility_flags = [{all_flags}]\n\n"
        '[[workflows]]\nname = "legacy"\nbinding = "LEGACY"\nclass_name = "Legacy"\n'
    )
    project = load_project(project_dir / "wrangler.toml")
    assert project.implicit_dependencies is not legacy
    async with open_runtime(project, tmp_path / "s", clock="virtual") as rt:
        inst = await rt.workflows["legacy"].create(id="l-1")
        status = await inst.wait(timeout=10)
    if legacy:
        assert status["output"] == [
            "hello ada from greet",
            "Step has 1 non-ctx parameter(s) but no 'depends' list provided",
        ]
    else:  # implicit mode has no depends= keyword
        assert status["status"] == "errored"
        assert status["error"]["name"] == "TypeError"
        assert "depends" in status["error"]["message"]
