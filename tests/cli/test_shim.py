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
