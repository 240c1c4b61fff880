"""The dev server's JSON API views and describe document, called directly: no HTTP, no subprocess."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator
from workflows_emulator.bindings.config import BindingConfigs
from workflows_emulator.devserver import ApiRequest, DevServer, InstanceApi, describe_instance
from workflows_emulator.devserver.api_views import Route, allowed_methods
from workflows_emulator.project import Project, Runtime, WorkflowConfig
from workflows_emulator.workers_shim.http import Request
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint

UNDONE: list[str] = []


async def _undo(rb: RollbackContext[Any]) -> None:
    UNDONE.append(rb.step_name)


def _refuse() -> None:
    raise NonRetryableError("refused")


class Order(WorkflowEntrypoint):
    """Reserve; optionally wait for an approval; optionally fail the charge (rolls back)."""

    async def run(self, event: Any, step: Any) -> Any:
        params = event["payload"]
        await step.do("reserve", lambda: {"hold": "h-1"}, rollback=_undo)
        if params.get("approve"):
            await step.wait_for_event("approval", "approved", timeout="1 hour")
        if params.get("nap"):
            await step.sleep("nap", "1 second")
        if params.get("fail"):
            await step.do("charge", _refuse, rollback=_undo)
        return {"ok": True}


def order_runtime(emu: Emulator, tmp_path: Path, name: str,
                  bindings: BindingConfigs | None = None) -> Runtime:
    """A project called ``name`` with the workflow ``order`` (`Order`) on ``emu``; `UNDONE`
    starts empty."""
    UNDONE.clear()
    project = Project(config_path=tmp_path / "wrangler.toml", name=name, main=tmp_path / "e.py",
                      compatibility_date="2026-03-01", compatibility_flags=(),
                      workflows=(WorkflowConfig("order", "ORDER", "Order"),),
                      bindings=bindings or BindingConfigs())
    return Runtime(project, emu, types.ModuleType("entry"), None,
                   {"order": emu.workflow(Order, name="order")})


@pytest.fixture
def api(emu: Emulator, tmp_path: Path) -> InstanceApi:
    return InstanceApi(order_runtime(emu, tmp_path, "views"), foreground=True)


async def ok(api: InstanceApi, method: str, path: str, body: Any = None) -> Any:
    answer = await api.handle(method, path, body)
    assert answer.status == 200, answer.body
    assert answer.body["success"] is True
    return answer.body["result"]


async def refused(api: InstanceApi, method: str, path: str, body: Any = None) -> tuple[int, str]:
    answer = await api.handle(method, path, body)
    assert answer.body["success"] is False
    return answer.status, answer.body["errors"][0]["message"]


async def test_workflows_with_counts(api: InstanceApi) -> None:
    assert await ok(api, "GET", "/workflows") == [
        {"name": "order", "binding": "ORDER", "class_name": "Order", "script_name": "views",
         "instances": {}}]
    await ok(api, "POST", "/workflows/order/instances", {"id": "o-1", "params": {}})
    assert (await ok(api, "GET", "/workflows/order"))["instances"] == {"complete": 1}
    status, message = await refused(api, "GET", "/workflows/nope")
    assert status == 404 and message.startswith('Workflow "nope" not found (this project has: order')


async def test_create_failing_instance_and_describe_its_rollback(api: InstanceApi) -> None:
    created = await ok(api, "POST", "/workflows/order/instances",
                       {"id": "o-2", "params": {"fail": True}})
    assert created["status"] == "errored"
    assert created["rollback"] == {"outcome": "complete", "error": None}
    assert UNDONE == ["charge-1", "reserve-1"]
    d = await ok(api, "GET", "/workflows/order/instances/latest")
    assert (d["workflow"], d["id"]) == ("order", "o-2")
    assert [(s["name"], s["state"], len(s["attempts"])) for s in d["steps"]] == [
        ("reserve", "success", 1), ("charge", "failure", 1)]
    assert d["steps"][0]["output"] == {"hold": "h-1"} and d["steps"][0]["has_rollback"]
    rb = d["rollback_phase"]
    assert rb["trigger"] == {"name": "NonRetryableError", "message": "refused"}
    assert (rb["outcome"], rb["total"], rb["completed"]) == ("complete", 2, 2)
    assert [(s["order"], s["step"]) for s in rb["steps"]] == [(1, "charge-1"), (2, "reserve-1")]
    assert d["start"] is not None and d["end"] is not None


async def test_event_wakes_a_waiting_instance(api: InstanceApi) -> None:
    created = await ok(api, "POST", "/workflows/order/instances",
                       {"id": "o-3", "params": {"approve": True}})
    assert created["status"] == "waiting"
    waiting = await ok(api, "GET", "/workflows/order/instances?status=waiting")
    assert [r["id"] for r in waiting] == ["o-3"]
    done = await ok(api, "POST", "/workflows/order/instances/o-3/events/approved", {"by": "x"})
    assert done == {"id": "o-3", "status": "complete", "error": None, "output": {"ok": True},
                    "rollback": None}


async def test_actions_are_checked_and_terminate_can_roll_back(api: InstanceApi) -> None:
    await ok(api, "POST", "/workflows/order/instances", {"id": "o-4", "params": {"approve": True}})
    path = "/workflows/order/instances/o-4"
    assert await refused(api, "PATCH", path, {"action": "jump"}) == (
        400, "Invalid action 'jump'. Must be one of: pause, resume, restart, terminate.")
    assert await refused(api, "PATCH", path, {"action": "pause", "rollback": True}) == (
        400, "'rollback' is only valid when terminating.")
    done = await ok(api, "PATCH", path, {"action": "terminate", "rollback": True})
    assert done["status"] == "terminated" and done["rollback"]["outcome"] == "complete"
    assert UNDONE == ["reserve-1"]


async def test_unknown_routes_statuses_and_deletes(api: InstanceApi) -> None:
    assert await refused(api, "GET", "/nope") == (
        404, "no API route /nope; see /__workflows/api/workflows")
    assert (await refused(api, "GET", "/workflows/order/instances?status=done"))[0] == 400
    assert await refused(api, "GET", "/workflows/order/instances/latest") == (
        404, 'There are no instances of workflow "order"')
    await ok(api, "POST", "/workflows/order/instances", {"id": "o-5"})
    await ok(api, "POST", "/workflows/order/instances", {"id": "o-6"})
    # an unknown instance is reported before an unknown route under it
    assert (await refused(api, "GET", "/workflows/order/instances/o-9/steps"))[0] == 404
    assert await refused(api, "GET", "/workflows/order/instances/o-5/steps") == (
        404, "no API route GET /workflows/order/instances/o-5/steps")
    # a known path asked with another method is a 405 naming what it accepts
    wrong = await api.handle("PUT", "/workflows/order/instances/o-5")
    assert wrong.status == 405 and wrong.headers == (("allow", "DELETE, GET, HEAD, PATCH"),)
    assert wrong.body["errors"][0]["message"] == (
        "PUT is not allowed on /workflows/order/instances/o-5; use DELETE, GET, HEAD, PATCH")
    assert (await api.handle("HEAD", "/workflows/order")).status == 200
    assert await ok(api, "DELETE", "/workflows/order/instances/o-5") == {"id": "o-5"}
    assert await ok(api, "DELETE", "/workflows/order") == {"deleted": ["o-6"]}
    assert await ok(api, "GET", "/workflows/order/instances") == []


async def test_unknown_body_keys_are_refused_naming_the_accepted_ones(api: InstanceApi) -> None:
    assert await refused(api, "POST", "/workflows/order/instances",
                         {"id": "k-1", "param": {}, "ttl": 3}) == (
        400, "unknown create option(s) ['param', 'ttl']: use id, params")
    assert await refused(api, "POST", "/workflows/order/instances", ["k-1"]) == (
        400, 'the body must be a JSON object {"id"?: str, "params"?: any}, not list')
    assert await ok(api, "GET", "/workflows/order/instances") == []
    await ok(api, "POST", "/workflows/order/instances", {"id": "k-2", "params": {"approve": True}})
    path = "/workflows/order/instances/k-2"
    assert await refused(api, "PATCH", path, {"action": "terminate", "rollbak": True}) == (
        400, "unknown instance action option(s) ['rollbak']: use action, from, rollback")
    assert (await refused(api, "PATCH", path, "terminate"))[0] == 400
    assert (await ok(api, "GET", path))["status"] == "waiting"


async def test_allowed_methods_come_from_the_route_table() -> None:
    assert allowed_methods(["workflows", "w"]) == ("DELETE", "GET", "HEAD")
    assert allowed_methods(["workflows", "w", "instances"]) == ("GET", "HEAD", "POST")
    assert allowed_methods(["workflows", "w", "instances", "i", "events", "t"]) == ("POST",)
    assert allowed_methods(["workflows", "w", "nothing"]) == ()


async def test_request_parsing_and_route_matching() -> None:
    request = ApiRequest.parse("GET", "/workflows/a%20b/instances?status=x&status=y")
    assert (request.path, request.parts, request.query) == (
        "/workflows/a%20b/instances", ["workflows", "a b", "instances"], {"status": "y"})
    route = Route("POST", "workflows/{name}/instances/{id}/events/{type}", InstanceApi.send_event)
    parts = ["workflows", "w", "instances", "i", "events", "t"]
    assert route.match("POST", parts) == {"name": "w", "id": "i", "type": "t"}
    assert route.match("GET", parts) is None
    assert route.match("POST", [*parts[:4], "other", "t"]) is None


async def test_describe_builder_on_an_instance(emu: Emulator) -> None:
    inst = await emu.workflow(Order, name="order").create(id="d-1", params={"fail": True})
    status = await inst.wait()
    d = describe_instance(inst, status)
    assert {k: d[k] for k in ("workflow", "id", "status")} == {
        "workflow": "order", "id": "d-1", "status": "errored"}
    assert d["events"] == inst.instance_events()
    assert {e["event"] for e in d["events"]} == {
        "WORKFLOW_QUEUED", "WORKFLOW_START", "ROLLBACK_START", "ROLLBACK_COMPLETE",
        "WORKFLOW_FAILURE"}
    assert [s["step"] for s in d["rollback_phase"]["steps"]] == ["charge-1", "reserve-1"]
    plain = await emu.workflow(Order, name="plain").create(id="d-2", params={})
    assert describe_instance(plain, await plain.wait())["rollback_phase"] is None


class Flaky(WorkflowEntrypoint):
    """One step that fails on its first attempt and succeeds on its second."""

    async def run(self, event: Any, step: Any) -> Any:
        async def once(ctx: Any) -> str:
            if ctx["attempt"] == 1:
                raise KeyError("first")
            return "second"

        return await step.do("flaky", once, config={"retries": {"limit": 1, "delay": "1 second"}})


async def test_describe_shows_each_attempt_from_the_engine_fold(emu: Emulator) -> None:
    inst = await emu.workflow(Flaky, name="flaky").create(id="f-1")
    status = await inst.wait()
    [step] = describe_instance(inst, status)["steps"]
    first, second = step["attempts"]
    assert first["state"] == "error" and first["error"] == {"name": "KeyError",
                                                            "message": "'first'"}
    assert second["state"] == "success" and second["error"] is None
    assert second["start"] - first["end"] == 1000  # the retry delay, on the virtual clock
    assert step["output"] == "second"


async def test_dev_server_dispatch_without_sockets(api: InstanceApi) -> None:
    server = DevServer(api.rt, "127.0.0.1", 0)
    bad = await server.respond(Request("http://h/__workflows/api/workflows/order/instances",
                                       method="POST", body=b"{nope"))
    assert bad.status == 400 and b"the request body is not JSON" in bad.body
    listed = await server.respond(Request("http://h/__workflows/api/workflows"))
    assert listed.status == 200 and listed.headers == [("content-type", "application/json")]
    worker = await server.respond(Request("http://h/anything"))
    assert worker.status == 404 and worker.body.startswith(b"this project has no fetch handler")
