"""A Hypothesis state machine: random lifecycle operations against a model (issue 10).

One `Emulator` on a state directory and a virtual clock runs a small saga; random sequences
of create, send event, pause, resume, terminate (with and without rollback), restart (from
scratch or from a step), release of a held step, advance and crash-and-reopen are checked
against `SagaModel`, a plain model of each instance: its status, and every step callback and
rollback handler run it should have caused, in order. Each rule ends with ``settle()``, so
the statuses compared are stable ones.

The saga (`saga_class`)::

    s1, s2, s3     step.do with a rollback handler each; s2 of a "held" instance waits for
                   the test to release it (so ``running`` and ``waitingForPause`` occur)
    go             wait_for_event("go", timeout 3 hours)
    nap            sleep 1 hour
    s4             step.do with a rollback handler; fails (NonRetryableError) if the event's
                   payload was "fail"

Callbacks and handlers append to a journal file (flushed at once), which survives the
"crash" (``close()`` stops every instance where it is, as a dying process would; a new
`Emulator` then opens the same directory). What the model expects, read from the existing
lifecycle tests and the reference (sections 3.3-3.5, 4.3):

- Rollback handlers run once each, in reverse start order of the steps started in the
  current run (an in-flight or failed step's own handler first, with ``output=None``), on a
  failure (``errored``) or ``terminate(rollback=True)`` (``terminated``); never on a plain
  ``terminate()``.
- ``pause()`` is immediate when no callback runs, ``waitingForPause`` while one does (then
  ``paused`` right after it, before the next step); a second pause does nothing; pausing or
  terminating a finished instance, and resuming one that is not paused, are refused. Resuming
  during ``waitingForPause`` cancels the pause. Timers keep their remaining time.
- Events are buffered until the wait takes them, also while paused; a restart drops them.
- A crash cuts off the attempt in flight: it counts as failed and the next attempt starts
  at once on reopen (with the retry limit of s2, the second cut-off fails the step for good).
  A pause asked for before the crash takes effect on reopen, before any new attempt (if
  the cut-off attempt was s2's last, the step's failure shows once the instance resumes):
  no test or reference text pins this case; the model follows what the emulator does, which
  agrees with "``waitingForPause`` while current work finishes" (nothing runs after a crash).
- ``restart()`` begins a new run; ``restart(from_step=...)`` keeps the steps started before
  it (their handlers take part in a later rollback) and is refused for a step not started.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from workflows_emulator import Emulator, Instance, InvalidActionError, VirtualClock, Workflow, WorkflowError
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint

T = TypeVar("T")

MINUTE = 60_000
HOUR = 60 * MINUTE
WAIT_TIMEOUT = 3 * HOUR
NAP = 1 * HOUR
START_MS = 1_790_000_000_000.0
S2_ATTEMPTS = 2
"""s2's retry limit is 1: a second attempt cut off by a crash fails the step for good."""
MAX_INSTANCES = 4
TERMINAL = ("complete", "errored", "terminated")
FINAL_EVENTS = {"complete": "WORKFLOW_SUCCESS", "errored": "WORKFLOW_FAILURE",
                "terminated": "WORKFLOW_TERMINATED"}

# -- the saga under test ---------------------------------------------------------------------


def note(journal: Path, **entry: Any) -> None:
    """Append one line to the journal; the file is closed (flushed) before returning."""
    with journal.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
        out.flush()


def saga_class(journal: Path, gates: dict[str, asyncio.Event]) -> type:
    """The saga of the module docstring, journaling into ``journal``; s2 of a held instance
    waits for ``gates[instance id]``."""

    class Saga(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            iid = event["instanceId"]
            hold = bool(event["payload"].get("hold"))

            def forward(name: str) -> Any:
                async def callback(ctx: Any) -> str:
                    note(journal, i=iid, k="fwd", s=name, a=ctx["attempt"])
                    if hold and name == "s2":
                        await gates[iid].wait()
                    return f"o{name[1:]}"

                return callback

            def undo(name: str) -> Any:
                def handler(rb: RollbackContext[Any]) -> None:
                    error = getattr(rb.error, "name", type(rb.error).__name__)
                    note(journal, i=iid, k="rb", s=name, out=rb.output, err=error)

                return handler

            await step.do("s1", forward("s1"), rollback=undo("s1"))
            # A long timeout: advancing the virtual clock must not time out a held attempt.
            await step.do("s2", forward("s2"), rollback=undo("s2"), config={
                "retries": {"limit": S2_ATTEMPTS - 1, "delay": "1 minute"}, "timeout": "365 days"})
            await step.do("s3", forward("s3"), rollback=undo("s3"))
            ev = await step.wait_for_event("go", "go", timeout="3 hours")
            await step.sleep("nap", "1 hour")

            async def final(ctx: Any) -> str:
                note(journal, i=iid, k="fwd", s="s4", a=ctx["attempt"])
                if ev["payload"] == "fail":
                    raise NonRetryableError("declined")
                return "o4"

            await step.do("s4", final, rollback=undo("s4"))
            return {"decision": ev["payload"]}

    return Saga


# -- the model -------------------------------------------------------------------------------


@dataclass
class SagaModel:
    """What one instance should be: where its run is, and what it should have journaled.

    ``stage`` is the next thing the run does (``"s1"``...``"s3"``, ``"wait"``, ``"sleep"``)
    or its terminal status. At a settled point a non-paused instance is parked in the wait
    or the sleep, or (held) inside an attempt of s2.
    """

    iid: str
    hold: bool
    stage: str = "s1"
    paused: bool = False
    pause_pending: bool = False
    s2_attempts: int = 0
    s2_in_flight: bool = False
    s2_failed: bool = False
    deadline: float | None = None
    """When the wait times out or the sleep ends (virtual ms), while not paused."""
    remaining: float | None = None
    """What is left of that timer while paused."""
    inbox: list[str] = field(default_factory=list)
    decision: str | None = None
    started: list[str] = field(default_factory=list)
    """The do steps started in the current run, in start order."""
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    rollback: str | None = None
    output: Any = None
    run_rollbacks: list[str] = field(default_factory=list)
    """The handlers run in the current run, in the order they ran."""
    journal: list[dict[str, Any]] = field(default_factory=list)
    """Every line the instance should have journaled, over all runs."""

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL

    @property
    def status(self) -> str:
        if self.terminal:
            return self.stage
        if self.paused:
            return "paused"
        if self.pause_pending:
            return "waitingForPause"
        return "running" if self.stage in ("s1", "s2", "s3") else "waiting"

    # transitions -------------------------------------------------------------------------

    def run_on(self, now: float, released: bool) -> None:
        """Run as far as the instance can without time moving (it is not paused)."""
        while True:
            if self.stage in ("s1", "s3"):
                self._start(self.stage, attempt=1)
                self.outputs[self.stage] = f"o{self.stage[1:]}"
                if self.stage == "s1":
                    self.stage = "s2"
                else:
                    self.stage, self.deadline = "wait", now + WAIT_TIMEOUT
            elif self.stage == "s2":
                if self.s2_failed:
                    self.fail("WorkflowInternalError")
                    return
                if not self.s2_in_flight:
                    self.s2_attempts += 1
                    self.s2_in_flight = True
                    self._start("s2", attempt=self.s2_attempts)
                if not released:
                    return
                self.s2_in_flight = False
                self.outputs["s2"] = "o2"
                self.stage = "s3"
                if self.pause_pending:  # it takes effect as soon as the step is done
                    self.pause_pending, self.paused = False, True
                    return
            elif self.stage == "wait" and self.inbox:
                self.decision = self.inbox.pop(0)
                self.stage, self.deadline = "sleep", now + NAP
            else:
                return

    def _start(self, name: str, attempt: int) -> None:
        if attempt == 1:
            self.started.append(name)
        self.journal.append({"i": self.iid, "k": "fwd", "s": name, "a": attempt})

    def timer_fires(self) -> None:
        """The wait's timeout, or the end of the sleep (then s4 runs)."""
        self.deadline = None
        if self.stage == "wait":
            self.fail("WorkflowTimeoutError")
            return
        assert self.stage == "sleep"
        self._start("s4", attempt=1)
        if self.decision == "fail":
            self.fail("NonRetryableError")
        else:
            self.outputs["s4"] = "o4"
            self._finish("complete", output={"decision": self.decision})

    def fail(self, error: str) -> None:
        self._roll_back(error)
        self._finish("errored", error=error)

    def terminate(self, rollback: bool) -> None:
        if rollback:
            self._roll_back("Error")  # the terminate error as a Python handler sees it
        self._finish("terminated")

    def _roll_back(self, error: str) -> None:
        for name in reversed(self.started):
            self.journal.append({"i": self.iid, "k": "rb", "s": name,
                                 "out": self.outputs.get(name), "err": error})
            self.run_rollbacks.append(f"{name}-1")
        self.rollback = "complete" if self.started else None

    def _finish(self, status: str, *, error: str | None = None, output: Any = None) -> None:
        self.stage, self.error, self.output = status, error, output
        self.paused = self.pause_pending = self.s2_in_flight = False
        self.deadline = self.remaining = None

    def pause(self, now: float) -> None:
        if self.s2_in_flight:
            self.pause_pending = True
            return
        self.paused = True
        if self.deadline is not None:
            self.remaining, self.deadline = self.deadline - now, None

    def resume(self, now: float, released: bool) -> None:
        if self.pause_pending:
            self.pause_pending = False
            return
        self.paused = False
        if self.remaining is not None:
            self.deadline, self.remaining = now + self.remaining, None
        self.run_on(now, released)

    def restart(self, from_step: str | None, now: float, released: bool) -> None:
        keep = [] if from_step is None else self.started[:self.started.index(from_step)]
        self.started = keep
        self.outputs = {k: v for k, v in self.outputs.items() if k in keep}
        self.stage = from_step or "s1"
        self.s2_attempts, self.s2_in_flight, self.s2_failed = 0, False, False
        self.paused = self.pause_pending = False
        self.deadline = self.remaining = self.decision = None
        self.inbox = []
        self.error = self.rollback = self.output = None
        self.run_rollbacks = []
        self.run_on(now, released)

    def crash(self, now: float, released: bool) -> None:
        """The process dies at a settled point, then a new one opens the state directory."""
        if not self.s2_in_flight:
            return  # parked, paused or finished: nothing was cut off
        self.s2_in_flight = False
        self.s2_failed = self.s2_attempts >= S2_ATTEMPTS
        if self.pause_pending:
            self.pause_pending, self.paused = False, True
            return
        self.run_on(now, released)

    # what the emulator should show ------------------------------------------------------

    def expected_status(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "output": self.output,
                "rollback": self.rollback}


def shown(status: dict[str, Any]) -> dict[str, Any]:
    """``status()`` reduced to what the model predicts (the error's name, the outcome)."""
    return {
        "status": status["status"],
        "error": status["error"]["name"] if status["error"] else None,
        "output": status["output"],
        "rollback": status["rollback"]["outcome"] if status["rollback"] else None,
    }


# -- the machine -----------------------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    """Drives one emulator with random lifecycle operations and checks it against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.state = Path(tempfile.mkdtemp(prefix="lifecycle-model-"))
        self.journal = self.state / "journal.jsonl"
        self.gates: dict[str, asyncio.Event] = {}
        self.models: dict[str, SagaModel] = {}
        self.now = START_MS
        self.seen: dict[str, dict[str, Any]] = {}
        """The last status each instance showed (for the terminal-status invariant)."""
        self.emu: Emulator | None = None
        self.wf: Workflow | None = None
        try:
            self.run(self._open())
        except BaseException:
            self.runner.close()
            shutil.rmtree(self.state, ignore_errors=True)
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    async def _open(self) -> None:
        emu = Emulator(self.state / "emu", clock=VirtualClock(self.now))
        try:
            self.wf = emu.workflow(saga_class(self.journal, self.gates), name="saga")
            await emu.__aenter__()
            await emu.settle()
        except BaseException:
            await emu.close()
            raise
        self.emu = emu

    async def _instance(self, iid: str) -> Instance:
        assert self.wf is not None
        return await self.wf.get(iid)

    def released(self, iid: str) -> bool:
        return not self.models[iid].hold or self.gates[iid].is_set()

    def pick(self, n: int) -> SagaModel:
        ids = sorted(self.models)
        return self.models[ids[n % len(ids)]]

    async def _settled(self, coro: Coroutine[Any, Any, Any]) -> None:
        assert self.emu is not None
        await coro
        await self.emu.settle()

    async def _refused(self, coro: Coroutine[Any, Any, None], error: type[Exception], what: str) -> None:
        with pytest.raises(error):
            await coro
        event(f"refused: {what}")

    def teardown(self) -> None:
        try:
            if self.emu is not None:
                self.run(self.emu.close())
        finally:
            self.runner.close()
            shutil.rmtree(self.state, ignore_errors=True)

    # -- rules -----------------------------------------------------------------------------

    @initialize(hold=st.booleans())
    def first_instance(self, hold: bool) -> None:
        self._create(hold)

    @precondition(lambda self: len(self.models) < MAX_INSTANCES)
    @rule(hold=st.booleans())
    def create(self, hold: bool) -> None:
        self._create(hold)

    def _create(self, hold: bool) -> None:
        iid = f"i{len(self.models)}"
        self.gates[iid] = asyncio.Event()
        model = self.models[iid] = SagaModel(iid, hold)
        assert self.wf is not None
        self.run(self._settled(self.wf.create(id=iid, params={"hold": hold})))
        model.run_on(self.now, self.released(iid))

    @precondition(lambda self: self.models)
    @rule(n=st.integers(0, MAX_INSTANCES - 1), payload=st.sampled_from(["ok", "fail"]))
    def send_go(self, n: int, payload: str) -> None:
        # Mostly to a live instance, so that the sleep and s4 are reached often enough;
        # send_other covers sending to finished ones.
        live = sorted(i for i, m in self.models.items() if not m.terminal)
        model = self.models[live[n % len(live)]] if live else self.pick(n)
        self._send(model, "go", payload)

    @precondition(lambda self: self.models)
    @rule(n=st.integers(0, MAX_INSTANCES - 1))
    def send_other(self, n: int) -> None:
        self._send(self.pick(n), "other", "ok")  # no wait takes it

    def _send(self, model: SagaModel, kind: str, payload: str) -> None:
        async def send() -> None:
            inst = await self._instance(model.iid)
            if model.terminal:
                await self._refused(inst.send_event(kind, payload), WorkflowError, "send_event")
            else:
                await self._settled(inst.send_event(kind, payload))

        self.run(send())
        if not model.terminal and kind == "go":
            model.inbox.append(payload)
            if not model.paused and not model.pause_pending:
                model.run_on(self.now, self.released(model.iid))

    @precondition(lambda self: self.models)
    @rule(n=st.integers(0, MAX_INSTANCES - 1))
    def pause(self, n: int) -> None:
        model = self.pick(n)

        async def pause() -> None:
            inst = await self._instance(model.iid)
            if model.terminal:
                await self._refused(inst.pause(), InvalidActionError, "pause")
            else:
                await self._settled(inst.pause())

        self.run(pause())
        if not model.terminal and not model.paused and not model.pause_pending:
            model.pause(self.now)

    @precondition(lambda self: self.models)
    @rule(n=st.integers(0, MAX_INSTANCES - 1))
    def resume(self, n: int) -> None:
        model = self.pick(n)
        valid = model.paused or model.pause_pending

        async def resume() -> None:
            inst = await self._instance(model.iid)
            if valid:
                await self._settled(inst.resume())
            else:
                await self._refused(inst.resume(), InvalidActionError, "resume")

        self.run(resume())
        if valid:
            model.resume(self.now, self.released(model.iid))

    @precondition(lambda self: self.models)
    @rule(n=st.integers(0, MAX_INSTANCES - 1), rollback=st.booleans())
    def terminate(self, n: int, rollback: bool) -> None:
        model = self.pick(n)

        async def terminate() -> None:
            inst = await self._instance(model.iid)
            if model.terminal:
                await self._refused(inst.terminate(rollback=rollback), InvalidActionError, "terminate")
            else:
                await self._settled(inst.terminate(rollback=rollback))

        self.run(terminate())
        if not model.terminal:
            model.terminate(rollback)

    @precondition(lambda self: self.models)
    @rule(n=st.integers(0, MAX_INSTANCES - 1), from_step=st.sampled_from([None, "s2", "s3"]))
    def restart(self, n: int, from_step: str | None) -> None:
        model = self.pick(n)
        valid = from_step is None or from_step in model.started

        async def restart() -> None:
            inst = await self._instance(model.iid)
            if valid:
                await self._settled(inst.restart(from_step=from_step))
            else:
                await self._refused(inst.restart(from_step=from_step), InvalidActionError, "restart")

        self.run(restart())
        if valid:
            model.restart(from_step, self.now, self.released(model.iid))
            self.seen.pop(model.iid, None)

    @precondition(lambda self: any(m.hold and not self.gates[i].is_set() for i, m in self.models.items()))
    @rule(n=st.integers(0, MAX_INSTANCES - 1))
    def release(self, n: int) -> None:
        held = [i for i, m in sorted(self.models.items()) if m.hold and not self.gates[i].is_set()]
        iid = held[n % len(held)]
        model = self.models[iid]

        async def release() -> None:
            assert self.emu is not None
            self.gates[iid].set()
            await self.emu.settle()

        self.run(release())
        if model.s2_in_flight:
            model.run_on(self.now, released=True)

    @rule(minutes=st.sampled_from([20, 60, 120, 180]))
    def advance(self, minutes: int) -> None:
        assert self.emu is not None
        self.run(self.emu.advance(f"{minutes} minutes"))
        self.now += minutes * MINUTE
        for model in self.models.values():
            if model.deadline is not None and model.deadline <= self.now:
                model.timer_fires()

    @rule()
    def crash_and_reopen(self) -> None:
        assert self.emu is not None
        emu, self.emu = self.emu, None
        self.run(emu.close())
        self.run(self._open())
        for iid, model in self.models.items():
            if model.s2_in_flight:
                event(f"crash: s2 attempt {model.s2_attempts} cut off, pause pending {model.pause_pending}")
            model.crash(self.now, self.released(iid))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def clock_matches(self) -> None:
        assert self.emu is not None
        assert self.emu.clock.now_ms() == self.now

    @invariant()
    def statuses_match(self) -> None:
        for iid, model in self.models.items():
            status = self.run(self._status(iid))
            assert shown(status) == model.expected_status(), iid
            event(f"status: {status['status']}, error {model.error}, rollback {model.rollback}")

    async def _status(self, iid: str) -> dict[str, Any]:
        return await (await self._instance(iid)).status()

    @invariant()
    def index_matches(self) -> None:
        assert self.wf is not None
        listed = self.run(self.wf.list())
        assert {r["id"]: r["status"] for r in listed} == {
            iid: model.status for iid, model in self.models.items()}

    @invariant()
    def terminal_statuses_stay(self) -> None:
        for iid in self.models:
            status = self.run(self._status(iid))
            before = self.seen.get(iid)
            if before is not None and before["status"] in TERMINAL:
                assert status == before, iid  # only a restart (which forgets it) changes it
            self.seen[iid] = status

    @invariant()
    def journal_matches(self) -> None:
        lines = self.journal.read_text("utf-8").splitlines() if self.journal.exists() else []
        runs = [json.loads(line) for line in lines]
        for iid, model in self.models.items():
            assert [r for r in runs if r["i"] == iid] == model.journal, iid
        assert {r["i"] for r in runs} <= set(self.models)

    @invariant()
    def log_matches(self) -> None:
        for iid, model in self.models.items():
            names = [e["event"] for e in self.run(self._instance(iid)).events()]
            assert names.count("ROLLBACK_START") == (model.rollback is not None), iid
            assert names.count("ROLLBACK_COMPLETE") == (model.rollback is not None), iid
            if model.terminal:
                assert names[-1] == FINAL_EVENTS[model.status], iid
            assert not any(n in FINAL_EVENTS.values() for n in names[:-1]), iid

    @invariant()
    def steps_match(self) -> None:
        for iid, model in self.models.items():
            rows = self.run(self._instance(iid)).steps()
            forward = [r.label for r in rows if r.kind == "do"]
            assert forward == [f"{name}-1" for name in model.started], iid
            rollbacks = [r for r in rows if r.kind == "rollback"]
            assert [r.label for r in rollbacks] == model.run_rollbacks, iid
            assert all(r.state == "success" and r.attempts == 1 for r in rollbacks), iid


LifecycleMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, database=None)
# About 20-25 s when it passes; shrinking a failure to its minimal example takes minutes.
TestLifecycleModel = pytest.mark.timeout(900)(pytest.mark.slow(LifecycleMachine.TestCase))
