"""Values crossing the engine: datetimes travel as JS Dates do, and a value that can't be
stored is refused naming the field at fault."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from workflows_emulator import Emulator, WorkflowError
from workflows_emulator.values import dumps, loads, shown
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
