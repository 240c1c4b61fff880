"""The Local Explorer API views (``/cdn-cgi/local/explorer/api``), called directly, and over HTTP.

The shapes are Cloudflare's: the tests marked ``e2e`` check every answer against the schemas
of the OpenAPI document miniflare ships in ``node_modules`` (read with the pinned Node), so
they need the npm tooling (``make .build/realruntime.stamp``, which ``make test`` builds) and
fail saying so without it. They are ``e2e`` like every other test that needs Cloudflare's
npm packages, so ``make test-fast`` runs on a checkout without them; the behaviour tests
(statuses, messages, pagination, rollback fields) run everywhere.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from realruntime_support import REPO
from workflows_emulator import Emulator
from workflows_emulator.bindings.config import (
    BindingConfigs,
    D1Config,
    DurableObjectConfig,
    KvConfig,
    R2Config,
)
from workflows_emulator.devserver import ApiResponse, InstanceApi
from workflows_emulator.devserver.explorer_api import ExplorerApi, RawAnswer, iso
from workflows_emulator.devserver.explorer_ui import find_ui, missing_ui_page, ui_file
from workflows_emulator.project import load_project, open_runtime

from .conftest import EXAMPLE, DevServer, http
from .test_api_views import UNDONE, order_runtime

EXPLORER_JS = (REPO / "node_modules" / "miniflare" / "dist" / "src" / "workers" / "local-explorer"
               / "explorer.worker.js")
NODE = REPO / "node_modules" / "node" / "bin" / "node"
BINDINGS = BindingConfigs(
    kv_namespaces=(KvConfig("CACHE", "cache-id"),),
    d1_databases=(D1Config("DB", "orders-db", "d1-uuid", Path("/tmp/migrations")),),
    r2_buckets=(R2Config("FILES", "files-bucket"),),
    durable_objects=(DurableObjectConfig("COUNTER", "Counter"),),
)


@pytest.fixture
def explorer(emu: Emulator, tmp_path: Path) -> ExplorerApi:
    runtime = order_runtime(emu, tmp_path, "shop", BINDINGS)
    # foreground: each change answers once the instance has settled (no server drives it here)
    return ExplorerApi(runtime, InstanceApi(runtime, foreground=True))


async def call(api: ExplorerApi, method: str, path: str, body: Any = None,
               status: int = 200) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    answer = await api.handle(method, path, raw)
    assert isinstance(answer, ApiResponse), answer
    assert answer.status == status, answer.body
    assert answer.body["success"] is (status == 200)
    assert answer.body["messages"] == []
    if status != 200:
        assert answer.body["result"] is None and len(answer.body["errors"]) == 1
    else:
        assert answer.body["errors"] == []
    SEEN.append((method, path, answer.status, answer.body))
    return answer.body


SEEN: list[tuple[str, str, int, dict[str, Any]]] = []
"""Every answer of the behaviour tests, for the schema check."""


def error(body: dict[str, Any]) -> tuple[int, str]:
    return body["errors"][0]["code"], body["errors"][0]["message"]


async def test_workflows_list_and_details(explorer: ExplorerApi) -> None:
    listed = await call(explorer, "GET", "/workflows")
    assert listed["result"] == [{"name": "order", "class_name": "Order", "script_name": "shop"}]
    assert listed["result_info"] == {"count": 1}
    await call(explorer, "POST", "/workflows/order/instances", {"id": "o-1", "params": {}})
    details = (await call(explorer, "GET", "/workflows/order"))["result"]
    assert details == {"name": "order", "class_name": "Order", "script_name": "shop",
                       "instances": {"queued": 0, "running": 0, "paused": 0, "errored": 0,
                                     "terminated": 0, "complete": 1, "waitingForPause": 0,
                                     "waiting": 0}}
    missing = await call(explorer, "GET", "/workflows/nope", status=404)
    assert error(missing) == (10501, "Workflow 'nope' not found.")
    assert error(await call(explorer, "DELETE", "/workflows/nope/instances/x", status=404)) == (
        10501, "Workflow 'nope' not found.")


async def test_instances_are_paginated_filtered_and_newest_first(explorer: ExplorerApi) -> None:
    for n in range(5):
        await call(explorer, "POST", "/workflows/order/instances",
                   {"id": f"o-{n}", "params": {"approve": n % 2 == 0}})
        await explorer.rt.emulator.advance("1 second")  # a distinct created_on each
    page = await call(explorer, "GET", "/workflows/order/instances?page=2&per_page=2")
    assert [i["id"] for i in page["result"]] == ["o-2", "o-1"]
    assert page["result_info"] == {"page": 2, "per_page": 2, "total_count": 5, "total_pages": 3,
                                   "status_counts": {"waiting": 3, "complete": 2}}
    first = page["result"][0]
    assert set(first) == {"id", "status", "created_on"} and first["created_on"].endswith("Z")
    waiting = await call(explorer, "GET", "/workflows/order/instances?status=waiting")
    assert [i["id"] for i in waiting["result"]] == ["o-4", "o-2", "o-0"]
    assert waiting["result_info"]["total_pages"] == 1
    assert (await call(explorer, "GET", "/workflows/order/instances?page=9"))["result"] == []

    created = waiting["result"][1]["created_on"]
    since = await call(explorer, "GET", f"/workflows/order/instances?date_start={created}")
    assert [i["id"] for i in since["result"]] == ["o-4", "o-3", "o-2"]
    inverted = await call(explorer, "GET", "/workflows/order/instances?date_start="
                          "2026-02-01T00:00:00Z&date_end=2026-01-01T00:00:00Z", status=400)
    assert error(inverted)[0] == 10502 and "'date_start' must not be after" in error(inverted)[1]
    for bad in ("status=done", "per_page=101", "page=0", "page=x", "date_end=yesterday"):
        refused = await call(explorer, "GET", f"/workflows/order/instances?{bad}", status=400)
        assert error(refused)[0] == 10001 and error(refused)[1].startswith(bad.split("=")[0])


async def test_details_of_a_rolled_back_instance(explorer: ExplorerApi) -> None:
    created = await call(explorer, "POST", "/workflows/order/instances",
                         {"id": "o-9", "params": {"fail": True, "nap": True}})
    assert created["result"] == {"id": "o-9"}
    d = (await call(explorer, "GET", "/workflows/order/instances/o-9"))["result"]
    assert d["status"] == "errored" and d["error"] == {"name": "NonRetryableError",
                                                        "message": "refused"}
    assert d["output"] is None and d["step_count"] == 3
    assert all(d[k].endswith("Z") for k in ("queued", "start", "end"))
    reserve, nap, charge = d["steps"]
    assert (reserve["name"], reserve["type"], reserve["success"]) == ("reserve-1", "step", True)
    assert reserve["output"] == {"hold": "h-1"}
    assert reserve["config"]["retries"]["limit"] == 5
    assert [(a["success"], a["error"]) for a in reserve["attempts"]] == [(True, None)]
    assert (nap["name"], nap["type"], nap["finished"], nap["error"]) == (
        "nap-1", "sleep", True, None)
    assert (charge["name"], charge["success"]) == ("charge-1", False) and "output" not in charge
    assert charge["attempts"][0]["error"] == {"name": "NonRetryableError", "message": "refused"}
    # the rollback phase, as extra fields
    assert d["rollback"] == {"outcome": "complete", "error": None}
    phase = d["rollback_phase"]
    assert phase["trigger"] == {"name": "NonRetryableError", "message": "refused"}
    assert [(s["order"], s["step"], s["state"]) for s in phase["steps"]] == [
        (1, "charge-1", "success"), (2, "reserve-1", "success")]
    assert phase["steps"][0]["start"].endswith("Z")
    assert UNDONE == ["charge-1", "reserve-1"]
    missing = await call(explorer, "GET", "/workflows/order/instances/nope", status=404)
    assert error(missing) == (10501, "Workflow instance 'nope' not found.")


async def test_status_changes_and_events(explorer: ExplorerApi) -> None:
    await call(explorer, "POST", "/workflows/order/instances",
               {"id": "w-1", "params": {"approve": True}})
    path = "/workflows/order/instances/w-1"
    waiting = (await call(explorer, "GET", path))["result"]
    assert waiting["status"] == "waiting" and waiting["steps"][1]["type"] == "waitForEvent"
    assert waiting["steps"][1]["finished"] is False
    refusal = await call(explorer, "PATCH", f"{path}/status",
                         {"status": "pause", "rollback": True}, status=400)
    assert error(refusal) == (10001, "'rollback' is only valid when terminating.")
    assert error(await call(explorer, "PATCH", f"{path}/status", b"{", status=400)) == (
        10001, "Invalid JSON request body")
    assert error(await call(explorer, "PATCH", f"{path}/status", {"status": "jump"},
                            status=400))[1].startswith("status: Invalid option")
    paused = (await call(explorer, "PATCH", f"{path}/status", {"status": "pause"}))["result"]
    assert paused["status"] == "paused" and paused["timestamp"].endswith("Z")
    resumed = await call(explorer, "PATCH", f"{path}/status", {"status": "resume"})
    assert resumed["result"]["status"] == "waiting"
    sent = await call(explorer, "POST", f"{path}/events/approved", {"by": "dave"})
    assert sent["result"] == {"success": True}
    done = (await call(explorer, "GET", path))["result"]
    assert done["status"] == "complete" and done["output"] == {"ok": True}
    assert done["steps"][1]["output"]["payload"] == {"by": "dave"}
    restarted = await call(explorer, "PATCH", f"{path}/status",
                           {"status": "restart", "from": {"name": "approval",
                                                          "type": "waitForEvent"}})
    assert restarted["result"]["status"] == "waiting"
    ended = await call(explorer, "PATCH", f"{path}/status",
                       {"status": "terminate", "rollback": True})
    assert ended["result"]["status"] == "terminated"
    assert ended["result"]["rollback"] == {"outcome": "complete", "error": None}
    assert UNDONE == ["reserve-1"]
    gone = await call(explorer, "POST", "/workflows/order/instances/nope/events/x", {},
                      status=404)
    assert error(gone) == (10501, "Workflow instance 'nope' not found.")


async def test_deletes(explorer: ExplorerApi) -> None:
    for n in range(4):
        await call(explorer, "POST", "/workflows/order/instances", {"id": f"d-{n}"})
    assert (await call(explorer, "DELETE", "/workflows/order/instances/d-0"))["result"] == {
        "success": True}
    await call(explorer, "DELETE", "/workflows/order/instances/d-0", status=404)
    batch = await call(explorer, "POST", "/workflows/order/instances/batch/delete",
                       {"instances": ["d-1", "gone"]})
    assert batch["result"]["deleted"] == [{"id": "d-1"}]
    assert [e["id"] for e in batch["result"]["errors"]] == ["gone"]
    await call(explorer, "POST", "/workflows/order/instances/batch/delete", {"instances": []},
               status=400)
    assert (await call(explorer, "DELETE", "/workflows/order"))["result"] == {
        "status": "ok", "success": True}
    left = await call(explorer, "GET", "/workflows/order/instances")
    assert left["result"] == [] and left["result_info"]["total_count"] == 0


async def test_workers_and_resource_listings(explorer: ExplorerApi) -> None:
    workers = (await call(explorer, "GET", "/local/workers"))["result"]
    assert len(workers) == 1 and workers[0]["isSelf"] is True and workers[0]["name"] == "shop"
    assert workers[0]["bindings"] == {
        "kv": [{"id": "cache-id", "bindingName": "CACHE"}],
        "d1": [{"id": "d1-uuid", "bindingName": "DB"}],
        "r2": [{"id": "files-bucket", "bindingName": "FILES"}],
        "do": [{"id": "shop-Counter", "bindingName": "COUNTER", "className": "Counter",
                "scriptName": "shop", "useSqlite": True}],
        "workflows": [{"id": "order", "bindingName": "ORDER", "className": "Order",
                       "scriptName": "shop"}],
        "sendEmail": [], "flagship": []}
    assert workers[0]["triggers"] == {"crons": []}
    kv = await call(explorer, "GET", "/storage/kv/namespaces")
    assert kv["result"] == [{"id": "cache-id", "title": "CACHE"}]
    d1 = await call(explorer, "GET", "/d1/database")
    assert d1["result"] == [{"name": "orders-db", "uuid": "d1-uuid", "version": "production"}]
    assert (await call(explorer, "GET", "/d1/database?name=nothing"))["result"] == []
    r2 = await call(explorer, "GET", "/r2/buckets")
    assert r2["result"] == {"buckets": [{"name": "files-bucket"}]}
    do = await call(explorer, "GET", "/workers/durable_objects/namespaces")
    assert do["result"] == [{"id": "shop-Counter", "name": "shop_Counter", "script": "shop",
                             "class": "Counter", "use_sqlite": True}]
    assert (await call(explorer, "GET", "/flagship/apps"))["result"] == []
    nothing = await call(explorer, "GET", "/workflows/order/nothing", status=404)
    assert error(nothing)[1] == ("No route for GET /cdn-cgi/local/explorer/api/workflows/order/"
                                 "nothing")


STORES_TOML = """
name = "stores"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[[kv_namespaces]]
binding = "CACHE"
id = "cache-ns"

[[d1_databases]]
binding = "DB"
database_name = "shop-db"
database_id = "0f1e2d3c"
"""


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[ExplorerApi]:
    """The explorer of a project loaded from its wrangler.toml, with a KV namespace and a D1
    database in a real state directory."""
    (tmp_path / "stores" / "src").mkdir(parents=True)
    (tmp_path / "stores" / "src" / "entry.py").write_text(textwrap.dedent("""
        from workers import WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return None
        """))
    (tmp_path / "stores" / "wrangler.toml").write_text(STORES_TOML)
    project = load_project(tmp_path / "stores" / "wrangler.toml")
    async with open_runtime(project, tmp_path / "state", clock="virtual") as rt:
        yield ExplorerApi(rt, InstanceApi(rt))


async def test_kv_keys_and_values(stores: ExplorerApi) -> None:
    cache = stores.rt.env.CACHE
    for n in range(12):
        await cache.put(f"user:{n:02}", f"value {n}", {"metadata": {"n": n}})
    await cache.put("other", b"\x00\xff")
    first = await call(stores, "GET", "/storage/kv/namespaces/cache-ns/keys?prefix=user:&limit=10")
    assert [k["name"] for k in first["result"]] == [f"user:{n:02}" for n in range(10)]
    assert first["result"][3] == {"name": "user:03", "metadata": {"n": 3}}
    assert first["result_info"]["count"] == 10 and first["result_info"]["cursor"]
    rest = await call(stores, "GET", "/storage/kv/namespaces/cache-ns/keys?prefix=user:&cursor="
                      + first["result_info"]["cursor"])
    assert [k["name"] for k in rest["result"]] == ["user:10", "user:11"]
    assert rest["result_info"] == {"count": 2, "cursor": ""}
    value = await stores.handle("GET", "/storage/kv/namespaces/cache-ns/values/other", b"")
    assert value == RawAnswer(200, b"\x00\xff")
    missing = await call(stores, "GET", "/storage/kv/namespaces/cache-ns/values/nope", status=404)
    assert error(missing) == (10009, "Not Found")
    unknown = await call(stores, "GET", "/storage/kv/namespaces/elsewhere/keys", status=404)
    assert error(unknown) == (10001, "KV namespace 'elsewhere' not found.")
    await call(stores, "GET", "/storage/kv/namespaces/cache-ns/keys?limit=5", status=400)


async def test_d1_raw_queries(stores: ExplorerApi) -> None:
    path = "/d1/database/0f1e2d3c/raw"
    made = await call(stores, "POST", path, {"batch": [
        {"sql": "CREATE TABLE sales (sku TEXT, cents INTEGER)"},
        {"sql": "INSERT INTO sales VALUES (?, ?), (?, ?)", "params": ["a1", 250, "b2", 99]}]})
    assert [r["success"] for r in made["result"]] == [True, True]
    assert made["result"][1]["meta"]["changes"] == 2
    rows = (await call(stores, "POST", path, {"sql": "SELECT sku, cents FROM sales ORDER BY sku"}
                       ))["result"]
    assert rows[0]["results"] == {"columns": ["sku", "cents"], "rows": [["a1", 250], ["b2", 99]]}
    assert (await stores.rt.env.DB.prepare("SELECT count(*) AS n FROM sales").first("n")) == 2
    failed = await call(stores, "POST", path, {"sql": "SELECT * FROM missing"}, status=400)
    assert "no such table: missing" in error(failed)[1]
    await call(stores, "POST", path, {"query": "SELECT 1"}, status=400)
    unknown = await call(stores, "POST", "/d1/database/nope/raw", {"sql": "SELECT 1"}, status=404)
    assert error(unknown) == (10001, "D1 database 'nope' not found.")


def test_iso_timestamps() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_767_225_600_123.9) == "2026-01-01T00:00:00.123Z"
    assert iso(None) is None


# -- the UI's files --------------------------------------------------------------------------


def test_ui_is_found_above_the_project_and_served_with_its_routes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    import workflows_emulator.devserver.explorer_ui as explorer_ui

    monkeypatch.setattr(explorer_ui, "REPOSITORY", tmp_path / "no-repository")
    ui = tmp_path / "work" / "node_modules" / "miniflare" / "dist" / "local-explorer-ui"
    (ui / "assets").mkdir(parents=True)
    (ui / "index.html").write_text("<html>index</html>")
    (ui / "assets" / "app.js").write_text("export {}")
    (tmp_path / "work" / "secret.txt").write_text("not served")
    project = tmp_path / "work" / "apps" / "shop"
    project.mkdir(parents=True)
    assert find_ui(project) == ui
    js = ui_file(ui, "/assets/app.js")
    assert js.status == 200 and js.body == b"export {}"
    assert dict(js.headers)["content-type"].startswith("text/javascript")
    for route in ("/", "", "/workflows/order/o-1", "/../../secret.txt", "/assets/missing.js"):
        page = ui_file(ui, route)
        assert page.body == b"<html>index</html>", route
        assert dict(page.headers)["content-type"] == "text/html; charset=utf-8"
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert find_ui(other) is None
    missing = missing_ui_page(other)
    assert missing.status == 404 and b"npm i -D wrangler" in missing.body


# -- over HTTP, on the real dev server ---------------------------------------------------------


def test_dev_server_serves_the_explorer_api_and_keeps_the_old_api(
        dev_server: Callable[[Path], DevServer]) -> None:
    server = dev_server(EXAMPLE)
    base = server.base + "/cdn-cgi/local/explorer/api"
    code, body = http("POST", base + "/workflows/transfer/instances",
                      {"id": "t-1", "params": {"from": "a", "to": "b", "amount": 5000}})
    assert code == 200 and body["result"] == {"id": "t-1"}
    server.wait_status("transfer", "t-1", {"errored"})  # through /__workflows/api
    code, body = http("GET", base + "/workflows/transfer/instances/t-1")
    assert code == 200 and body["result"]["rollback"]["outcome"] == "complete"
    code, body = http("GET", base + "/workflows/nope")
    assert code == 404 and body == {"success": False, "messages": [], "result": None,
                                    "errors": [{"code": 10501,
                                                "message": "Workflow 'nope' not found."}]}
    code, page = http("GET", server.base + "/cdn-cgi/local/explorer/workflows/transfer")
    expected = find_ui(EXAMPLE.parent)
    if expected is None:
        assert code == 404 and "npm i -D wrangler" in page
    else:
        assert code == 200 and page == (expected / "index.html").read_text()


# -- the shapes, against the OpenAPI document ------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document miniflare serves at ``GET /cdn-cgi/local/explorer/api``, read from
    its bundle with the pinned Node (it is a JavaScript object literal there)."""
    if not (EXPLORER_JS.is_file() and NODE.is_file()):
        pytest.fail(f"the npm tooling is missing ({EXPLORER_JS}, {NODE}): run "
                    "`make .build/realruntime.stamp`")
    source = EXPLORER_JS.read_text()
    start = source.index("var openapi_local_default = ")
    end = source.index("\n};\n", start) + 3
    script = source[start:end] + "\nprocess.stdout.write(JSON.stringify(openapi_local_default));"
    out = subprocess.run([str(NODE), "-"], input=script, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    document: dict[str, Any] = json.loads(out)
    return document


def _json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` becomes a ``null`` alternative."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {k: _json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable"):
        converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The document's operation for ``method path`` (a concrete path, query ignored)."""
    parts = path.split("?")[0].strip("/").split("/")
    for template, operations in document["paths"].items():
        segments = template.strip("/").split("/")
        if len(segments) == len(parts) and all(
                s.startswith("{") or s == p for s, p in zip(segments, parts, strict=True)) \
                and method.lower() in operations:
            operation: dict[str, Any] = operations[method.lower()]
            return operation
    raise AssertionError(f"the document has no {method} {path}")


@pytest.mark.e2e
async def test_every_answer_matches_the_openapi_document(explorer: ExplorerApi,
                                                         stores: ExplorerApi) -> None:
    try:
        import jsonschema
    except ImportError:
        pytest.fail("the jsonschema package is missing: pip install -e 'emulator[test]'")
    document = openapi_document()
    SEEN.clear()
    # Every behaviour test above, on a fresh workflow each, recording each answer in SEEN.
    for scenario in (test_workflows_list_and_details,
                     test_instances_are_paginated_filtered_and_newest_first,
                     test_details_of_a_rolled_back_instance, test_status_changes_and_events,
                     test_deletes, test_workers_and_resource_listings):
        UNDONE.clear()
        await scenario(explorer)
        await explorer.handle("DELETE", "/workflows/order", b"")
    await test_kv_keys_and_values(stores)
    await test_d1_raw_queries(stores)
    resolver_root = _json_schema(document)
    checked: set[str] = set()
    for method, path, status, body in SEEN:
        if path.endswith("/nothing"):
            continue  # no such operation: the route-miss envelope is checked below
        operation = _operation(document, method, path)
        responses = operation["responses"]
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        assert response is not None, f"{method} {path}: the document has no {status} answer"
        schema = _json_schema(response["content"]["application/json"]["schema"])
        validator = jsonschema.Draft7Validator(
            {**schema, "components": resolver_root["components"]})
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}"
                    for e in validator.iter_errors(body)]
        assert not problems, f"{method} {path} -> {status}: {problems}\n{body}"
        checked.add(operation["operationId"])
    failure = _json_schema(document["components"]["schemas"]["workers_api-response-common-failure"])
    jsonschema.Draft7Validator({**failure, "components": resolver_root["components"]}).validate(
        next(b for _, p, _, b in SEEN if p.endswith("/nothing")))
    workflow_operations = {op["operationId"] for path, ops in document["paths"].items()
                           if path.startswith("/workflows") for op in ops.values()}
    assert workflow_operations <= checked, workflow_operations - checked
