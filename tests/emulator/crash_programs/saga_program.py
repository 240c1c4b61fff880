"""A child process for the crash tests: run one scenario's phase against a state directory.

Usage::

    python saga_program.py STATE_DIR SIDE_EFFECTS_FILE SCENARIO PHASE

Every side effect (a forward step attempt, a rollback handler call) appends one JSON line
to SIDE_EFFECTS_FILE before anything else happens, so the parent test can count exactly
what ran in which process. In the ``first`` phase the process dies on purpose
(``os._exit(1)`` or SIGKILL) at the scenario's crash point. Other phases reopen the same
state, register the same workflow and print a JSON report as the last stdout line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, WorkflowEntrypoint

INSTANCE_ID = "crash-1"
STATE_DIR = ""
SIDE_EFFECTS = ""
PHASE = ""


def record(**entry: Any) -> None:
    entry["phase"] = PHASE
    entry["pid"] = os.getpid()
    with open(SIDE_EFFECTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def crash(how: str = "exit") -> None:
    """Die at once, as a killed process would: no cleanup, no finally blocks."""
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)


def forward(name: str, result: Any = None, crash_first: bool = False):
    def callback(ctx):
        record(kind="fwd", step=name, attempt=ctx["attempt"])
        if crash_first and PHASE == "first":
            crash()
        return result if result is not None else f"out-{name}"

    return callback


def handler(name: str, crash_first: bool = False):
    def rollback(rb) -> None:
        record(kind="rb", step=name, output=rb.output, step_name=rb.step_name,
               error_name=getattr(rb.error, "name", type(rb.error).__name__),
               error=str(rb.error))
        if crash_first and PHASE == "first":
            crash()

    return rollback


class ForwardCrash(WorkflowEntrypoint):
    """Dies in the first attempt of ``b``; ``a`` is done, ``c`` not started."""

    async def run(self, event, step):
        a = await step.do("a", forward("a"), rollback=handler("a"))
        b = await step.do("b", forward("b", crash_first=True), rollback=handler("b"))
        c = await step.do("c", forward("c"), rollback=handler("c"))
        return [a, b, c]


class ForwardCrashLastAttempt(WorkflowEntrypoint):
    """Dies in ``b``'s only attempt (no retries): ``b`` fails and the saga rolls back."""

    async def run(self, event, step):
        await step.do("a", forward("a"), rollback=handler("a"))
        await step.do("b", forward("b", crash_first=True), rollback=handler("b"),
                      config={"retries": {"limit": 0, "delay": 0}})
        await step.do("c", forward("c"), rollback=handler("c"))


class RollbackCrash(WorkflowEntrypoint):
    """``d`` fails for good; rollback runs c, b (dies in the first process), a."""

    async def run(self, event, step):
        await step.do("a", forward("a"), rollback=handler("a"))
        await step.do("b", forward("b"), rollback=handler("b", crash_first=True))
        await step.do("c", forward("c"), rollback=handler("c"))

        def fail(ctx):
            record(kind="fwd", step="d", attempt=ctx["attempt"])
            raise NonRetryableError("d failed")

        await step.do("d", fail)


class Sleeper(WorkflowEntrypoint):
    async def run(self, event, step):
        a = await step.do("a", forward("a"), rollback=handler("a"))
        await step.sleep("nap", "1 hour")
        b = await step.do("b", forward("b"), rollback=handler("b"))
        return [a, b]


class EventWaiter(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("a", forward("a"), rollback=handler("a"))
        ev = await step.wait_for_event("approval", "approved", timeout="1 hour")
        b = await step.do("b", forward("b", result={"approved_by": ev["payload"]["by"]}))
        return b


class BufferedEventWaiter(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("a", forward("a"), rollback=handler("a"))
        await step.sleep("nap", "1 hour")
        ev = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return {"payload": ev["payload"], "type": ev["type"]}


class TerminateCrash(WorkflowEntrypoint):
    """Waits for an event; terminate(rollback=True) rolls back c, b (dies once), a."""

    async def run(self, event, step):
        await step.do("a", forward("a"), rollback=handler("a"))
        await step.do("b", forward("b"), rollback=handler("b", crash_first=True))
        await step.do("c", forward("c"), rollback=handler("c"))
        await step.do("plain", forward("plain"))
        await step.wait_for_event("approval", "approved", timeout="7 days")
        await step.do("never", forward("never"), rollback=handler("never"))


IN_FLIGHT: asyncio.Event | None = None


class PauseWhileRunning(WorkflowEntrypoint):
    """``b`` is in flight (forever, in the first process) when pause() is called."""

    async def run(self, event, step):
        a = await step.do("a", forward("a"), rollback=handler("a"))

        async def slow(ctx):
            record(kind="fwd", step="b", attempt=ctx["attempt"])
            if PHASE == "first":
                assert IN_FLIGHT is not None
                IN_FLIGHT.set()
                await asyncio.Event().wait()  # never finishes in this process
            return "out-b"

        b = await step.do("b", slow, config={"timeout": "1 day"})
        c = await step.do("c", forward("c"))
        return [a, b, c]


class RollbackCrashNoRetry(WorkflowEntrypoint):
    """Like `RollbackCrash`, but b's handler allows no retry: the crash fails the rollback."""

    async def run(self, event, step):
        await step.do("a", forward("a"), rollback=handler("a"))
        await step.do("b", forward("b"), rollback=handler("b", crash_first=True),
                      rollback_config={"retries": {"limit": 0, "delay": 0}})
        await step.do("c", forward("c"), rollback=handler("c"))
        raise RuntimeError("plain failure after the steps")


class ParallelCrash(WorkflowEntrypoint):
    """p1 and p2 start together; p1 completes; the process dies inside p2."""

    async def run(self, event, step):
        async def p2(ctx):
            record(kind="fwd", step="p2", attempt=ctx["attempt"])
            if PHASE == "first":
                await asyncio.sleep(0.2)  # p1 finishes meanwhile
                crash()
            return "out-p2"

        results = await asyncio.gather(
            step.do("p1", forward("p1"), rollback=handler("p1")),
            step.do("p2", p2, rollback=handler("p2")),
        )
        await step.do("after", forward("after"))
        return results


SCENARIOS: dict[str, type] = {
    "forward": ForwardCrash,
    "forward-last-attempt": ForwardCrashLastAttempt,
    "rollback": RollbackCrash,
    "sleep": Sleeper,
    "event": EventWaiter,
    "event-timeout": EventWaiter,
    "event-buffered": BufferedEventWaiter,
    "paused": Sleeper,
    "terminate": TerminateCrash,
    "waiting-for-pause": PauseWhileRunning,
    "rollback-no-retry": RollbackCrashNoRetry,
    "parallel": ParallelCrash,
}


def report(inst: Any, status: dict[str, Any], emu: Emulator, **extra: Any) -> None:
    events = [
        {"event": e["event"], "step": e["step"], "attempt": e["attempt"],
         "timestamp": e["timestamp"], "data": e["data"]}
        for e in inst.events()
    ]
    print(json.dumps({"status": status, "events": events, "now": emu.clock.now_ms(),
                      **extra}, default=str))


async def first(scenario: str) -> None:
    async with Emulator(STATE_DIR) as emu:
        wf = emu.workflow(SCENARIOS[scenario], name="crashy")
        inst = await wf.create(id=INSTANCE_ID, params={"scenario": scenario})
        if scenario in ("forward", "forward-last-attempt", "rollback", "rollback-no-retry",
                        "parallel"):
            status = await inst.wait(timeout=30)  # the crash happens inside
        elif scenario == "sleep":
            status = await inst.wait(until={"waiting"}, timeout=30)
            crash("kill")
        elif scenario in ("event", "event-timeout"):
            status = await inst.wait(until={"waiting"}, timeout=30)
            crash()
        elif scenario == "event-buffered":
            status = await inst.wait(until={"waiting"}, timeout=30)  # sleeping
            await inst.send_event("approved", {"by": "carol"})
            crash()
        elif scenario == "paused":
            await inst.wait(until={"waiting"}, timeout=30)
            await emu.advance("10 minutes")
            await inst.pause()
            status = await inst.status()
            if status["status"] == "paused":
                crash()
        elif scenario == "waiting-for-pause":
            global IN_FLIGHT
            IN_FLIGHT = asyncio.Event()
            await asyncio.wait_for(IN_FLIGHT.wait(), 30)
            await inst.pause()
            status = await inst.status()
            if status["status"] == "waitingForPause":
                crash()
        elif scenario == "terminate":
            await inst.wait(until={"waiting"}, timeout=30)
            await inst.terminate(rollback=True)
            status = await inst.wait(timeout=30)  # the crash happens in b's handler
        else:
            raise SystemExit(f"unknown scenario {scenario}")
        # Reaching this line means the planned crash did not happen.
        report(inst, status, emu, crashed=False)


async def resume(scenario: str) -> None:
    async with Emulator(STATE_DIR) as emu:
        wf = emu.workflow(SCENARIOS[scenario], name="crashy")
        inst = await wf.get(INSTANCE_ID)
        extra: dict[str, Any] = {}
        if scenario == "event":
            await inst.send_event("approved", {"by": "bob"})
        if scenario == "paused":
            extra["status_on_reopen"] = (await inst.status())["status"]
            try:
                await inst.wait(timeout=5)
                extra["wait_while_paused"] = "returned"
            except Exception as exc:
                extra["wait_while_paused"] = type(exc).__name__
            await emu.advance("5 hours")
            extra["status_after_advance"] = (await inst.status())["status"]
            await inst.resume()
            extra["resumed_at"] = emu.clock.now_ms()
        if scenario == "waiting-for-pause":
            extra["status_on_reopen"] = (await inst.status())["status"]
            extra["settled_at"] = (await inst.wait(until={"paused"}, timeout=30))["status"]
            await inst.resume()
        status = await inst.wait(timeout=30)
        report(inst, status, emu, crashed=False, **extra)


def main() -> None:
    global STATE_DIR, SIDE_EFFECTS, PHASE
    STATE_DIR, SIDE_EFFECTS, scenario, PHASE = sys.argv[1:5]
    asyncio.run(first(scenario) if PHASE == "first" else resume(scenario))


if __name__ == "__main__":
    main()
