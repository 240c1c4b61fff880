"""Saga workflows shared by both sides of the differential tier (tests/differential).

This one file runs unchanged under workerd + wrangler's local Workflows engine (imported by
``worker.py``) and under ``workflows_emulator`` (imported by the tests). It uses only
``workflows_saga``; trace recording is injected through the ``TRACE`` binding of ``env``:
under workerd a Durable Object namespace (``TraceLog`` in worker.py), under the emulator a
Python stand-in with the same two methods (``append(json) -> int``, ``count(kind) -> int``).

Every retry delay is set explicitly (the local engine's default delay differs from ours).
"""

import asyncio

from worker_trace import Trace, describe_error

from workflows_saga import NonRetryableError, WorkflowEntrypoint

NO_RETRY = {"retries": {"limit": 0, "delay": 1, "backoff": "constant"}}
FAST_RETRY = {"limit": 3, "delay": 10, "backoff": "constant"}
QUICK = {"retries": {"limit": 2, "delay": 5, "backoff": "constant"}, "timeout": "30 seconds"}


def rollback_entry(rb):
    return {
        "step_name": rb.step_name,
        "output": rb.output,
        "error": describe_error(rb.error),
    }


class _Traced(WorkflowEntrypoint):
    def trace(self, event):
        return Trace(self.env, event["instanceId"])


def _undo(log, label="rollback"):
    async def undo(rb):
        await log.add(label, **rollback_entry(rb))

    return undo


class SequentialSaga(_Traced):
    """Decorator keyword, `.rollback` attach and call forms, then a failing step."""

    async def run(self, event, step):
        log = self.trace(event)
        undo = _undo(log)

        @step.do("reserve", rollback=undo, config=QUICK)
        async def reserve():
            await log.add("start", step="reserve")
            await log.add("end", step="reserve")
            return {"reservation": "r-1"}

        @step.do("charge", config=QUICK)
        async def charge():
            await log.add("start", step="charge")
            await log.add("end", step="charge")
            return {"charge": "c-1", "amount": 42}

        @charge.rollback
        async def refund(rb):
            await log.add("rollback", **rollback_entry(rb))

        await reserve()
        await charge()

        async def ship():
            await log.add("start", step="ship")
            await log.add("end", step="ship")
            return "parcel-7"

        await step.do(
            "ship", ship, config=QUICK, rollback=undo, rollback_config={"retries": FAST_RETRY}
        )

        async def fail():
            await log.add("start", step="fail")
            raise KeyError("boom")

        await step.do("fail", fail, config=NO_RETRY, rollback=undo)
        return "unreachable"


class ConcurrentSaga(_Traced):
    """Two concurrent steps: "slow" starts first and ends last; then a step fails."""

    async def run(self, event, step):
        log = self.trace(event)
        undo = _undo(log)

        @step.do("slow", rollback=undo, config=QUICK)
        async def slow():
            await log.add("start", step="slow")
            await asyncio.sleep(0.5)
            await log.add("end", step="slow")
            return "slow-done"

        @step.do("fast", rollback=undo, config=QUICK)
        async def fast():
            await asyncio.sleep(0.05)
            await log.add("start", step="fast")
            await log.add("end", step="fast")
            return "fast-done"

        await asyncio.gather(slow(), fast())

        async def fail():
            await log.add("start", step="fail")
            raise RuntimeError("after the concurrent steps")

        await step.do("fail", fail, config=NO_RETRY)


class CaughtSaga(_Traced):
    """Errors caught in run(): no rollback, the workflow completes."""

    async def run(self, event, step):
        log = self.trace(event)
        undo = _undo(log)

        async def book():
            await log.add("start", step="book")
            await log.add("end", step="book")
            return "booked"

        await step.do("book", book, config=QUICK, rollback=undo)

        async def raise_value():
            await log.add("start", step="value")
            raise ValueError("bad value")

        async def raise_key():
            await log.add("start", step="key")
            raise KeyError("missing")

        async def raise_nonretryable():
            await log.add("start", step="nonretryable")
            raise NonRetryableError("stop now")

        cases = [
            ("value", raise_value, NO_RETRY),
            ("key", raise_key, NO_RETRY),
            ("nonretryable", raise_nonretryable, {"retries": FAST_RETRY}),
        ]
        for name, fn, config in cases:
            try:
                await step.do(name, fn, config=config, rollback=undo)
            except Exception as exc:
                await log.add("caught", step=name, error=describe_error(exc))
        return {"finished": True}


class RetrySaga(_Traced):
    """A forward step retried twice, and a handler that fails twice under rollback_config."""

    async def run(self, event, step):
        log = self.trace(event)

        async def flaky_refund(rb):
            await log.add("rollback-attempt", **rollback_entry(rb))
            if await log.count("rollback-attempt") < 3:
                raise RuntimeError("refund service unavailable")
            await log.add("rollback", **rollback_entry(rb))

        async def first():
            await log.add("start", step="first")
            if await log.count("start") < 3:
                raise RuntimeError("flaky forward")
            await log.add("end", step="first")
            return 1

        await step.do("first", first, config={"retries": FAST_RETRY}, rollback=_undo(log))

        async def charge():
            await log.add("start", step="charge")
            await log.add("end", step="charge")
            return {"charge": "c-9"}

        await step.do(
            "charge",
            charge,
            config=QUICK,
            rollback=flaky_refund,
            rollback_config={"retries": FAST_RETRY, "timeout": "30 seconds"},
        )

        async def fail():
            await log.add("start", step="fail")
            raise ValueError("card declined")

        await step.do("fail", fail, config=NO_RETRY)


class HaltSaga(_Traced):
    """A handler raising NonRetryableError (or exhausting its retries) halts the chain."""

    async def run(self, event, step):
        log = self.trace(event)
        mode = event["payload"].get("mode", "nonretryable")

        async def bad_refund(rb):
            await log.add("rollback-attempt", **rollback_entry(rb))
            if mode == "nonretryable":
                raise NonRetryableError("refund refused")
            raise RuntimeError("refund failed")

        limit = FAST_RETRY if mode == "nonretryable" else {**FAST_RETRY, "limit": 1}

        async def first():
            await log.add("start", step="first")
            await log.add("end", step="first")
            return 1

        async def charge():
            await log.add("start", step="charge")
            await log.add("end", step="charge")
            return 2

        await step.do("first", first, config=QUICK, rollback=_undo(log))
        await step.do(
            "charge", charge, config=QUICK, rollback=bad_refund, rollback_config={"retries": limit}
        )

        async def fail():
            await log.add("start", step="fail")
            raise ValueError("card declined")

        await step.do("fail", fail, config=NO_RETRY)


class SuccessSaga(_Traced):
    """Succeeds: nothing is rolled back."""

    async def run(self, event, step):
        log = self.trace(event)
        undo = _undo(log)

        async def one():
            await log.add("start", step="one")
            await log.add("end", step="one")
            return 1

        async def two(ctx):
            await log.add("start", step="two")
            await log.add("end", step="two")
            return ctx.attempt + first

        first = await step.do("one", one, config=QUICK, rollback=undo)
        second = await step.do("two", two, config=QUICK, rollback=undo)
        return {"sum": second}


class ApprovalSaga(_Traced):
    """Books two things, then waits for an approval that never comes: terminated with rollback."""

    async def run(self, event, step):
        log = self.trace(event)
        undo = _undo(log)

        async def hotel():
            await log.add("start", step="hotel")
            await log.add("end", step="hotel")
            return {"hotel": "h-1"}

        async def flight():
            await log.add("start", step="flight")
            await log.add("end", step="flight")
            return {"flight": "f-1"}

        await step.do("hotel", hotel, config=QUICK, rollback=undo)
        await step.do("flight", flight, config=QUICK, rollback=undo)
        await log.add("waiting")
        approval = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return approval["payload"]


WORKFLOWS = {
    cls.__name__: cls
    for cls in (
        SequentialSaga, ConcurrentSaga, CaughtSaga, RetrySaga, HaltSaga, SuccessSaga,
        ApprovalSaga,
    )
}
