"""Values crossing the engine: datetimes travel as JS Dates do, a value that can't be stored is
refused naming the field at fault, values are limited to 1 MiB of UTF-8, and ids, names and
event types must match as a whole."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, EmulatorError, WorkflowError
from workflows_emulator.durable_object import DurableObjectNamespace
from workflows_emulator.values import (
    dumps,
    loads,
    shown,
    validate_addressable_id,
    validate_event_type,
    validate_instance_id,
    validate_workflow_name,
)
from workflows_saga import WorkflowEntrypoint


async def test_event_and_datetimes_round_trip_through_steps_and_output(emu: Emulator) -> None:
    seen: list[Any] = []

    class Dates(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            when = await step.do("when", lambda: {"at": event["timestamp"]})
            seen.append(when["at"])
            got = await step.wait_for_event("w", "go", timeout="1 hour")
            return {"event": event, "received": got}

    inst = await emu.workflow(Dates, name="dates").create(params={"p": 1})
    await inst.wait(until={"waiting"})
    await inst.send_event("go", {"ok": True})
    status = await inst.wait()
    assert status["status"] == "complete", status
    out = status["output"]
    assert isinstance(seen[0], datetime) and seen[0] == out["event"]["timestamp"]
    assert isinstance(out["received"]["timestamp"], datetime)
    assert out["received"]["payload"] == {"ok": True}


def test_datetimes_are_tagged_in_storage_and_shown_as_iso_strings() -> None:
    moment = datetime.fromtimestamp(1_786_001_400.123)
    assert loads(dumps({"at": moment})) == {"at": moment}
    assert shown(moment).endswith("Z") and shown(moment).startswith("2026-")


async def test_an_unserialisable_value_names_the_field_at_fault(emu: Emulator) -> None:
    class Bad(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await step.do("bad", lambda: {"items": [1, {2, 3}]})

    inst = await emu.workflow(Bad, name="bad").create()
    await inst.wait()
    failure = next(e for e in inst.events() if e["event"] == "ATTEMPT_FAILURE")
    assert "the output['items'][1] is of type set" in failure["data"]["error"]["message"]
    with pytest.raises(WorkflowError, match=r"params\['when'\] is of type object"):
        await emu.workflow(Bad, name="bad2").create(params={"when": object()})


async def test_a_sensitive_output_is_redacted_wherever_it_is_shown(tmp_path: Any) -> None:
    got: list[Any] = []

    class Secret(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            token = await step.do("token", lambda: {"t": "s3cret"}, config={"sensitive": "output"})
            got.append(token)
            await step.sleep("nap", "1 hour")
            return "done"

    async with Emulator(tmp_path / "state") as emu:
        inst = await emu.workflow(Secret, name="secret").create(id="s")
        live = [e async for e in _until_waiting(inst)]
        assert {"type": "step_completed", "output": "[REDACTED]"}.items() <= next(
            e for e in live if e["type"] == "step_completed").items()
    async with Emulator(tmp_path / "state") as emu:  # replayed after a restart of the process
        inst = await emu.workflow(Secret, name="secret").get("s")
        await inst.wait()
        done = next(e for e in inst.events() if e["event"] == "STEP_SUCCESS")
        assert done["data"]["output"] == "[REDACTED]"
        assert [r.output for r in inst.steps() if r.kind == "do"] == ["[REDACTED]"]
    assert got == [{"t": "s3cret"}, {"t": "s3cret"}]  # the workflow always gets the real value


async def _until_waiting(inst: Any) -> Any:
    async for event in inst.subscribe():
        yield event
        if event["type"] == "sleep_started":
            return


_TZ_PROGRAM = """
import asyncio
from workflows_emulator import Emulator, VirtualClock
from workflows_saga import WorkflowEntrypoint

class Stamp(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("s", lambda: {"at": event["timestamp"]})

async def main():
    async with Emulator(clock=VirtualClock(start_ms=1_786_001_400_000)) as emu:
        inst = await emu.workflow(Stamp, name="stamp").create()
        print(repr((await inst.wait())["output"]["at"]))

asyncio.run(main())
"""


def test_datetimes_are_the_worker_s_utc_whatever_the_laptop_s_time_zone() -> None:
    import os
    import subprocess
    import sys

    seen = {
        tz: subprocess.run([sys.executable, "-c", _TZ_PROGRAM], capture_output=True, text=True,
                           check=True, env={**os.environ, "TZ": tz}).stdout.strip()
        for tz in ("UTC", "Asia/Tokyo", "America/New_York")
    }
    assert set(seen.values()) == {"datetime.datetime(2026, 8, 6, 7, 30)"}, seen


# -- ids, names and event types: the whole string must match ----------------------------------

TRAILING = ["a\n", "a\r\n", "flow\n"]


@pytest.mark.parametrize("value", TRAILING)
async def test_a_trailing_newline_is_refused_in_every_id_name_and_event_type(
        tmp_path: Path, value: str) -> None:
    async def body(event: Any, step: Any) -> Any:
        try:
            await step.wait_for_event("w", value, timeout="1 hour")
        except WorkflowError as exc:
            return str(exc)
        return "accepted"

    async with Emulator(tmp_path / "state") as emu:
        with pytest.raises(WorkflowError, match="invalid workflow name"):
            emu.workflow(make(body), name=value)
        wf = emu.workflow(make(body), name="flow")
        with pytest.raises(WorkflowError, match="Workflow instance has invalid id"):
            await wf.create(id=value)
        with pytest.raises(WorkflowError, match="Workflow instance has invalid id"):
            await wf.get(value)
        with pytest.raises(WorkflowError, match=r"instance\.invalid_id"):
            await wf.delete_instance(value)
        inst = await wf.create(id="ok", params={})
        with pytest.raises(WorkflowError, match="invalid_event_type"):
            await inst.send_event(value, {})
        status = await inst.wait(timeout=10)
        assert "invalid_event_type" in status["output"], status
    with pytest.raises(EmulatorError, match="invalid object name"):
        DurableObjectNamespace(tmp_path / "objects").path_for(value)
    made = [p for p in tmp_path.rglob("*") if "\n" in p.name or "\r" in p.name]
    assert made == []


def test_names_still_take_every_character_cloudflare_allows() -> None:
    assert validate_instance_id("A_b-9") == "A_b-9"
    assert validate_addressable_id("0 0 * * MON#2-1786001400000").endswith("000")
    assert validate_workflow_name("w" * 64) == "w" * 64
    assert validate_event_type("_x-1") == "_x-1"


# -- the 1 MiB limits count UTF-8 bytes --------------------------------------------------------

MIB = 1 << 20  # 1,048,576: "at most 1 MiB", so this many bytes pass and one more fails


def _json_string_of(size: int) -> str:
    """A string of mostly 4-byte emoji whose JSON is exactly ``size`` UTF-8 bytes (escaped, each
    emoji would take 12)."""
    body = size - 2  # the quotes
    text = "😀" * (body // 4) + "a" * (body % 4)
    assert len(json.dumps(text, ensure_ascii=False).encode()) == size
    return text


def test_stored_json_keeps_text_as_utf8_and_a_lone_surrogate_escaped() -> None:
    assert dumps({"名": "中文 😀"}) == '{"名": "中文 😀"}'
    lone = {"k\ud800": "x\udfff", "pair": "\ud83d"}
    text = dumps(lone)
    assert text.isascii() and "\\ud800" in text and "\\udfff" in text
    assert loads(text) == lone
    assert loads(text.encode()) == lone


async def test_params_are_limited_to_1_mib_of_utf8_to_the_byte(emu: Emulator) -> None:
    wf = emu.workflow(make(_echo), name="echo")
    emoji = "😀" * 100_000  # 400,000 bytes; 1.2 MB as \uXXXX escapes
    chinese = "中" * 233_000  # 699,000 bytes; 1.4 MB as escapes
    for n, params in enumerate([{"e": emoji}, {"c": chinese}, _json_string_of(MIB)]):
        inst = await wf.create(id=f"ok-{n}", params=params)
        assert (await inst.wait(timeout=30))["output"] == params
    with pytest.raises(WorkflowError, match=r"params is too large\. Maximum allowed size is 1MiB"):
        await wf.create(id="over", params=_json_string_of(MIB + 1))
    with pytest.raises(WorkflowError, match="1MiB"):
        await wf.create(id="far-over", params={"c": "中" * 385_000})  # ~1.1 MiB
    assert [i["id"] for i in await wf.list()] == ["ok-0", "ok-1", "ok-2"]


async def test_step_outputs_are_limited_to_1_mib_of_utf8_to_the_byte(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        seen = []
        for size in (400_000, MIB, MIB + 1):
            try:
                out = await step.do(f"s{size}", lambda size=size: _json_string_of(size),
                                    config={"retries": {"limit": 0, "delay": 0}})
                seen.append(len(out))
            except Exception as exc:
                seen.append(str(exc))
        return seen

    status = await (await emu.workflow(make(body), name="big").create()).wait(timeout=30)
    assert status["output"] == [
        (400_000 - 2) // 4 + 2, (MIB - 2) // 4 + 2,
        f"WorkflowInternalError: Step s{MIB + 1}-1 output is too large. Maximum allowed size "
        "is 1MiB."]


async def test_event_payloads_and_workflow_outputs_are_limited_to_1_mib_of_utf8(
        emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        got = await step.wait_for_event("w", "go", timeout="1 hour")
        return got["payload"] if event["payload"] == "echo" else _json_string_of(MIB + 1)

    wf = emu.workflow(make(body), name="ev")
    inst = await wf.create(id="echo", params="echo")
    await inst.wait(until={"waiting"})
    with pytest.raises(WorkflowError, match=r"event payload is too large"):
        await inst.send_event("go", _json_string_of(MIB + 1))
    payload = _json_string_of(MIB)
    await inst.send_event("go", payload)
    assert (await inst.wait(timeout=30))["output"] == payload
    over = await wf.create(id="over", params="over")
    await over.wait(until={"waiting"})
    await over.send_event("go", {})
    status = await over.wait(timeout=30)
    assert status["status"] == "errored"
    assert "workflow output is too large" in status["error"]["message"]


async def test_a_lone_surrogate_is_stored_and_read_back_after_a_restart(tmp_path: Path) -> None:
    odd = {"k\ud800": ["\udfff", "中"]}

    async def body(event: Any, step: Any) -> Any:
        out = await step.do("odd", lambda: odd)
        got = await step.wait_for_event("w", "go", timeout="1 hour")
        return {"params": event["payload"], "step": out, "event": got["payload"]}

    async with Emulator(tmp_path / "state") as emu:
        inst = await emu.workflow(make(body), name="odd").create(id="o", params=odd)
        await inst.wait(until={"waiting"})
        await inst.send_event("go", odd)
    async with Emulator(tmp_path / "state") as emu:
        status = await (await emu.workflow(make(body), name="odd").get("o")).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"] == {"params": odd, "step": odd, "event": odd}


async def _echo(event: Any, step: Any) -> Any:
    return event["payload"]


def make(body: Any) -> type:
    """A workflow class whose ``run`` is ``body(event, step)``."""

    async def run(self: Any, event: Any, step: Any) -> Any:
        return await body(event, step)

    return type("Body", (WorkflowEntrypoint,), {"run": run})
