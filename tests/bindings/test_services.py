"""Service bindings: ``fetch`` and RPC calls on an entrypoint class of the same project."""

from __future__ import annotations

from typing import Any

import pytest

from workflows_emulator.bindings.services import ServiceBinding
from workflows_emulator.workers_shim import (
    Env,
    ExecutionContext,
    Request,
    Response,
    WorkerEntrypoint,
)
from workflows_emulator.workers_shim.rpc import JsDict

built: list[Any] = []


class Default(WorkerEntrypoint):
    """A default export with a fetch handler and RPC methods, as on Cloudflare."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        built.append(self)
        self.hits = 0

    async def fetch(self, request: Request) -> Response:
        self.hits += 1
        body = await request.text()
        return Response.json({"url": request.url, "method": str(request.method), "body": body,
                              "auth": request.headers.get("authorization"),
                              "greeting": self.env.GREETING})

    async def add(self, a: int, b: int) -> int:
        return a + b

    async def describe(self, item: Any, *rest: Any) -> Any:
        return {"item": item, "rest": list(rest), "kind": type(item).__name__}

    def sync_method(self) -> str:
        return "not async"

    async def hits_so_far(self) -> int:
        return self.hits

    async def fails(self) -> None:
        raise PermissionError("not allowed")

    async def bad_result(self) -> Any:
        return {"when": {1, 2}}

    async def call_self(self) -> int:
        return int(await self.env.SVC.add(20, 22))


class AdminApi(WorkerEntrypoint):
    """A named entrypoint without fetch."""

    async def ping(self) -> str:
        return "pong"


def binding(target: type = Default, name: str = "SVC") -> ServiceBinding:
    svc = ServiceBinding(target, name=name)
    svc.attach_env(Env("test", {name: svc, "GREETING": "hello"}))
    return svc


async def test_fetch_calls_the_entrypoints_fetch_with_a_request() -> None:
    svc = binding()
    resp = await svc.fetch("https://svc.internal/items?x=1", method="POST", body="data",
                           headers={"Authorization": "Bearer t"})
    assert isinstance(resp, Response) and resp.status == 200
    assert await resp.json() == {"url": "https://svc.internal/items?x=1", "method": "POST",
                                 "body": "data", "auth": "Bearer t", "greeting": "hello"}
    as_dict = await svc.fetch("https://svc.internal/", {"method": "PUT", "body": b"raw"})
    assert (await as_dict.json())["method"] == "PUT"
    req = Request("https://svc.internal/r", method="DELETE")
    assert (await (await svc.fetch(req)).json())["method"] == "DELETE"
    with pytest.raises(TypeError, match="Fetch API cannot load: items"):
        await svc.fetch("items")
    with pytest.raises(TypeError, match="unknown option"):
        await svc.fetch("https://svc.internal/", redirect="manual")


async def test_each_call_gets_a_new_instance_with_ctx_and_env() -> None:
    svc = binding()
    built.clear()
    await svc.fetch("https://svc.internal/")
    assert await svc.hits_so_far() == 0  # a new instance: the fetch's hit is not there
    assert len(built) == 2 and built[0] is not built[1]
    assert isinstance(built[0].ctx, ExecutionContext)
    assert built[0].env.GREETING == "hello"


async def test_rpc_methods_cross_as_over_rpc() -> None:
    svc = binding()
    assert await svc.add(2, 3) == 5
    sent = {"a": {"b": [1, None]}}
    got = await svc.describe(sent, "x")
    assert got == {"item": sent, "rest": ["x"], "kind": "JsDict"}
    assert isinstance(got, JsDict) and got.item.a.b == [1, None]
    # trailing keywords arrive as one options dict, as Pyodide passes them
    assert await svc.describe(1, limit=2) == {"item": 1, "rest": [{"limit": 2}], "kind": "int"}
    assert await svc.sync_method() == "not async"
    assert await svc.call_self() == 42
    with pytest.raises(TypeError, match="cannot be sent over RPC"):
        await svc.add((1,), 2)
    with pytest.raises(TypeError, match=r"result of Default\.bad_result\(\) cannot be sent"):
        await svc.bad_result()


async def test_errors_propagate_and_unknown_methods_name_the_entrypoint() -> None:
    svc = binding()
    with pytest.raises(PermissionError, match="not allowed"):
        await svc.fails()
    with pytest.raises(AttributeError) as info:
        svc.missing  # noqa: B018
    message = str(info.value)
    assert "SVC" in message and "entrypoint Default has no method 'missing'" in message
    assert "add, bad_result, call_self, describe, fails" in message
    with pytest.raises(AttributeError, match="no method '_secret'"):
        svc._secret  # noqa: B018
    with pytest.raises(NotImplementedError, match="connect"):
        svc.connect("host:1")


async def test_a_named_entrypoint() -> None:
    admin = binding(AdminApi, "ADMIN")
    assert await admin.ping() == "pong"
    with pytest.raises(TypeError, match=r"does not export a fetch\(\) function"):
        await admin.fetch("https://admin/")
    with pytest.raises(AttributeError, match=r"its RPC methods: ping\)"):
        admin.pong  # noqa: B018


def test_the_target_must_be_a_class() -> None:
    with pytest.raises(TypeError, match="needs an entrypoint class"):
        ServiceBinding(Default(None, None), name="SVC")  # type: ignore[arg-type]
