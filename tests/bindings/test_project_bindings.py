"""A project's binding tables reach ``env``: stores on the state directory, doubles, errors.

Each test writes a real project (wrangler.toml + src/entry.py), loads it with `load_project`
and runs it with `open_runtime`, as the CLI and the dev server do.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from workflows_emulator.errors import ProjectConfigError
from workflows_emulator.project import load_project, open_runtime

BASE = """
name = "shop"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]
[[workflows]]
name = "flow"
binding = "FLOW"
class_name = "Flow"
"""

ENTRY = """
from workers import DurableObject, WorkerEntrypoint, WorkflowEntrypoint, fetch


class Counter(DurableObject):
    async def add(self, n):
        total = (await self.ctx.storage.get("total") or 0) + n
        await self.ctx.storage.put("total", total)
        return total


class Pricing(WorkerEntrypoint):
    async def price(self, sku):
        return {"sku": sku, "cents": 250}


class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        env = self.env

        @step.do("remember")
        async def remember():
            await env.CACHE.put("last", event["payload"]["sku"], metadata={"by": "flow"})
            return await env.CACHE.get("last")

        @step.do("store")
        async def store():
            obj = await env.FILES.put("receipt.txt", "paid", customMetadata={"sku": "a1"})
            return obj.size

        @step.do("count")
        async def count():
            stub = env.COUNTER.get(env.COUNTER.idFromName("global"))
            return await stub.add(2)

        @step.do("quote")
        async def quote():
            return await env.PRICING.price(event["payload"]["sku"])

        @step.do("record")
        async def record():
            await env.DB.exec("CREATE TABLE IF NOT EXISTS sales (sku TEXT, cents INTEGER)")
            await env.DB.prepare("INSERT INTO sales VALUES (?, ?)").bind("a1", 250).run()
            return await env.DB.prepare("SELECT count(*) AS n FROM sales").first("n")

        @step.do("call out")
        async def call_out():
            if "URL" not in env:
                return None
            reply = await fetch(env.URL, method="POST", body="hi")
            return [reply.status, await reply.text()]

        return [await remember(), await store(), await count(), await quote(), await call_out(),
                await record()]
"""

TABLES = """
[[kv_namespaces]]
binding = "CACHE"
id = "cache-ns"

[[d1_databases]]
binding = "DB"
database_name = "shop-db"
database_id = "0f1e2d3c"

[[r2_buckets]]
binding = "FILES"
bucket_name = "files"

[[durable_objects.bindings]]
name = "COUNTER"
class_name = "Counter"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Counter"]

[[services]]
binding = "PRICING"
service = "shop"
entrypoint = "Pricing"
"""


def write(root: Path, tables: str = TABLES, entry: str = ENTRY, extra: str = "") -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(entry))
    (root / "wrangler.toml").write_text(BASE + tables + extra)
    return root / "wrangler.toml"


async def run_flow(config: Path, state: Path, **options: Any) -> dict[str, Any]:
    async with open_runtime(load_project(config), state, clock="virtual", **options) as rt:
        inst = await rt.workflows["flow"].create(params={"sku": "a1"})
        return await inst.wait()


async def test_each_table_becomes_a_store_in_the_state_directory(tmp_path: Path) -> None:
    config = write(tmp_path / "p")
    state = tmp_path / "state"
    status = await run_flow(config, state)
    assert status["status"] == "complete", status
    assert status["output"] == ["a1", 4, 2, {"sku": "a1", "cents": 250}, None, 1]
    assert (state / "kv" / "cache-ns.sqlite").is_file()
    assert (state / "d1" / "0f1e2d3c.sqlite").is_file()
    assert (state / "r2" / "files" / "objects.sqlite").is_file()
    assert len(list((state / "do" / "Counter").glob("*.sqlite"))) == 1

    # Everything persisted: a second run sees the counter at 2 already.
    again = await run_flow(config, state)
    assert again["output"][2] == 4
    assert again["output"][5] == 2


async def test_a_binding_the_emulator_does_not_emulate_needs_a_double(tmp_path: Path) -> None:
    config = write(tmp_path / "p", extra='\n[ai]\nbinding = "AI"\n')
    with pytest.raises(ProjectConfigError) as caught:
        await run_flow(config, tmp_path / "state")
    message = str(caught.value)
    assert 'binding "AI" in [ai] is not emulated' in message
    assert "emulator_doubles.py" in message and "make_doubles(project)" in message


async def test_a_doubles_module_beside_the_config_supplies_and_replaces_bindings(
        tmp_path: Path) -> None:
    root = tmp_path / "p"
    config = write(root, extra='\n[ai]\nbinding = "AI"\n')
    (root / "emulator_doubles.py").write_text(textwrap.dedent("""
        class FakeKv:
            def __init__(self):
                self.data = {}
            async def put(self, key, value, **options):
                self.data[key] = value
            async def get(self, key):
                return "double:" + self.data[key]

        def make_doubles(project):
            assert project.name == "shop"
            return {"AI": object(), "CACHE": FakeKv()}
    """))
    status = await run_flow(config, tmp_path / "state")
    assert status["output"][0] == "double:a1"
    assert not (tmp_path / "state" / "kv").exists()  # the double replaced the store


async def test_doubles_for_undeclared_bindings_are_refused(tmp_path: Path) -> None:
    config = write(tmp_path / "p")
    with pytest.raises(ProjectConfigError, match=r'a double for "MAILER", but .* declares no '
                       "binding of that name"):
        await run_flow(config, tmp_path / "state", doubles={"MAILER": object()})


async def test_a_doubles_file_without_make_doubles_says_what_to_add(tmp_path: Path) -> None:
    config = write(tmp_path / "p")
    (tmp_path / "doubles.py").write_text("AI = 1\n")
    with pytest.raises(ProjectConfigError, match=r"defines no make_doubles\(project\)"):
        await run_flow(config, tmp_path / "state", doubles=str(tmp_path / "doubles.py"))


@pytest.fixture
async def loopback_server() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 that echoes the method and body."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.method}:{await request.text()}", status=201)

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/echo"
    finally:
        await runner.cleanup()


async def test_outbound_fetch_goes_to_the_network(tmp_path: Path, loopback_server: str) -> None:
    config = write(tmp_path / "p", extra=f'\n[vars]\nURL = "{loopback_server}"\n')
    status = await run_flow(config, tmp_path / "state")
    assert status["output"][4] == [201, "POST:hi"]


async def test_a_fetch_double_answers_instead_of_the_network(tmp_path: Path) -> None:
    from workflows_emulator.workers_shim.http import Request, Response

    seen: list[str] = []

    async def fake(request: Request) -> Response:
        seen.append(f"{request.method.value} {request.url} {await request.text()}")
        return Response("from the double", status=299)

    config = write(tmp_path / "p", extra='\n[vars]\nURL = "https://api.example.invalid/x"\n')
    status = await run_flow(config, tmp_path / "state", doubles={"fetch": fake})
    assert status["output"][4] == [299, "from the double"]
    assert seen == ["POST https://api.example.invalid/x hi"]


def test_binding_tables_are_checked_when_loading(tmp_path: Path) -> None:
    config = write(tmp_path / "p", tables='[[kv_namespaces]]\nid = "x"\n')
    with pytest.raises(ProjectConfigError, match=r'\[\[kv_namespaces\]\] entry #1 should have '
                       r'a string "binding" field but got nothing; add it'):
        load_project(config)
    config = write(tmp_path / "q", tables=TABLES + '\n[[kv_namespaces]]\nbinding = "FILES"\n')
    with pytest.raises(ProjectConfigError, match='binding "FILES" is declared twice'):
        load_project(config)


async def test_a_durable_object_class_missing_from_main_is_named(tmp_path: Path) -> None:
    config = write(tmp_path / "p", tables=TABLES.replace('class_name = "Counter"',
                                                         'class_name = "Tally"'))
    with pytest.raises(ProjectConfigError, match=r"names the class 'Tally', but entry\.py defines "
                       "no such class"):
        await run_flow(config, tmp_path / "state")


async def test_a_service_of_another_worker_needs_a_double(tmp_path: Path) -> None:
    config = write(tmp_path / "p", tables=TABLES.replace('service = "shop"',
                                                         'service = "billing"'))
    with pytest.raises(ProjectConfigError, match='binds the Worker "billing", but only this '
                       'project \\("shop"\\) runs here'):
        await run_flow(config, tmp_path / "state")


async def test_the_readme_doubles_module_works_as_written(tmp_path: Path) -> None:
    from readme_blocks import readme_block

    root = tmp_path / "p"
    config = write(root, extra='\n[ai]\nbinding = "AI"\n', entry=ENTRY.replace(
        "return [await remember()",
        'return [(await env.AI.run("@cf/llava", {"image": []})).response, await remember()'))
    (root / "emulator_doubles.py").write_text(readme_block("# emulator_doubles.py"))
    status = await run_flow(config, tmp_path / "state")
    assert status["output"][0] == "a cat on a sofa"


def test_a_misspelt_key_in_a_binding_entry_is_named_with_the_fix(tmp_path: Path) -> None:
    config = write(tmp_path / "p", tables='[[kv_namespaces]]\nbindng = "CACHE"\nid = "x"\n')
    with pytest.raises(ProjectConfigError) as caught:
        load_project(config)
    assert 'should have a string "binding" field' in str(caught.value)
    assert 'unknown key "bindng" in [[kv_namespaces]] entry #1' in str(caught.value)
    assert 'did you mean "binding"?' in str(caught.value)
