"""A child process for the kill-at-every-commit tests: a 20-step saga killed at one commit.

Usage::

    python commit_kill_saga.py run JOB_JSON   # run one job in this process
    python commit_kill_saga.py serve          # fork server: one JSON job per stdin line

A job is a JSON object:

- ``state``, ``journal``, ``report``, ``log``: the state directory, the side-effect journal
  (JSON lines, appended with flush + fsync before a callback or handler returns), where the
  job's report goes and where its stdout/stderr go (``serve`` mode).
- ``action``: ``"create"`` creates the instance and waits for it; ``"recover"`` opens the
  state, registers the workflow (which resumes unfinished instances), settles, then waits.
- ``kill``: ``null``, or ``["after", k]`` / ``["before", k]``: ``kill -9`` this process
  right after (before) the k-th transaction commit on the instance's SQLite file.
- ``trace``: ``null``, or a file that receives one JSON line per commit hook call on any
  storage file, with a digest of the instance file's committed content as another
  connection sees it at that moment.

``serve`` imports the emulator once and forks one child per job (each child is a real
process with its own SQLite connections, killed for real); it answers each job with one
JSON line ``{"signal": n | null, "exit": code | null}`` once the child has ended. Importing
the emulator costs ~0.2 s per process, which would dominate ~350 short-lived processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Any

from workflows_emulator import Emulator, InstanceNotFoundError, VirtualClock
from workflows_emulator.durable_object import StorageHooks, install_hooks
from workflows_saga import NonRetryableError, WorkflowEntrypoint

WORKFLOW = "kill-saga"
INSTANCE_ID = "saga-1"
STEPS = 20
CLOCK_START_MS = 1_800_000_000_000.0
"""A fixed virtual start time: two runs of the same job write byte-identical state."""
NO_DELAY = {"retries": {"limit": 1, "delay": 0}}
"""One retry, at once: an attempt cut off by a kill is retried, as is a handler's."""
CHILD_DEADLINE_S = 60

JOURNAL = ""


def step_name(i: int) -> str:
    return f"s{i:02d}"


def journal(**entry: Any) -> None:
    entry["pid"] = os.getpid()
    with open(JOURNAL, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def forward(name: str, fails: bool):
    def callback(ctx: Any) -> str:
        journal(kind="step", name=name, attempt=ctx["attempt"])
        if fails:
            raise NonRetryableError(f"{name} failed")
        return f"out-{name}"

    return callback


def handler(name: str):
    def rollback(rb: Any) -> None:
        journal(kind="rollback", name=name, output=rb.output, step_name=rb.step_name,
                error=[rb.error.name, rb.error.message])

    return rollback


class KillSaga(WorkflowEntrypoint):
    """Twenty steps, each with a rollback handler; the twentieth fails for good."""

    async def run(self, event: Any, step: Any) -> None:
        for i in range(1, STEPS + 1):
            name = step_name(i)
            await step.do(name, forward(name, fails=i == STEPS), config=NO_DELAY,
                          rollback=handler(name), rollback_config=NO_DELAY)


def snapshot(conn: sqlite3.Connection) -> dict[str, Any]:
    """The committed content of an instance file, as another connection sees it."""
    log = conn.execute("SELECT id, ts, event, key, step, attempt, data FROM log ORDER BY id").fetchall()
    kv = conn.execute("SELECT key, value FROM _kv ORDER BY key").fetchall()
    alarm = conn.execute("SELECT id, at FROM _alarm ORDER BY id").fetchall()
    inbox = conn.execute("SELECT id, type, payload, ts FROM inbox ORDER BY id").fetchall()
    digest = hashlib.sha256(json.dumps([log, kv, alarm, inbox]).encode()).hexdigest()
    return {"max_id": log[-1][0] if log else 0, "events": [row[2] for row in log],
            "digest": digest}


class CommitKiller(StorageHooks):
    """Counts commits on the instance file; kills this process at the chosen one."""

    def __init__(self, state: Path, kill: list[Any] | None, trace: str | None) -> None:
        self.instance_file = (state / "instances" / WORKFLOW / f"{INSTANCE_ID}.sqlite").resolve()
        self.kill = (kill[0], int(kill[1])) if kill else None
        self.counts = {"before": 0, "after": 0}
        self.trace = trace
        self._reader: sqlite3.Connection | None = None
        self._resolved: dict[str, Path] = {}

    def before_commit(self, path: Path) -> None:
        self._hook("before", path)

    def after_commit(self, path: Path) -> None:
        self._hook("after", path)

    def _hook(self, when: str, path: Path) -> None:
        resolved = self._resolved.get(str(path))
        if resolved is None:
            resolved = self._resolved[str(path)] = Path(path).resolve()
        mine = resolved == self.instance_file
        if mine:
            self.counts[when] += 1
        if self.trace is not None:
            self._trace(when, mine, path)
        if mine and self.kill == (when, self.counts[when]):
            os.kill(os.getpid(), signal.SIGKILL)

    def _trace(self, when: str, mine: bool, path: Path) -> None:
        line: dict[str, Any] = {"hook": when, "file": Path(path).name, "k": self.counts[when]}
        if mine:
            if self._reader is None:
                self._reader = sqlite3.connect(f"file:{self.instance_file}?mode=ro", uri=True)
            line.update(snapshot(self._reader))
        with open(self.trace or "", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def created_before() -> bool:
    """Whether an earlier process saw ``create()`` return (the instance was acknowledged)."""
    if not os.path.exists(JOURNAL):
        return False
    with open(JOURNAL, encoding="utf-8") as fh:
        return any(json.loads(line)["kind"] == "created" for line in fh)


async def create(state: Path) -> dict[str, Any]:
    async with Emulator(state, clock=VirtualClock(CLOCK_START_MS)) as emu:
        wf = emu.workflow(KillSaga, name=WORKFLOW)
        inst = await wf.create(id=INSTANCE_ID, params={"steps": STEPS})
        journal(kind="created", name=INSTANCE_ID)
        status = await inst.wait(timeout=CHILD_DEADLINE_S / 2)
        return {"status": status, "events": inst.events()}


async def recover(state: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"acknowledged": created_before()}
    # Later than the first process, as a restart would be.
    async with Emulator(state, clock=VirtualClock(CLOCK_START_MS + 60_000)) as emu:
        wf = emu.workflow(KillSaga, name=WORKFLOW)  # resumes what is unfinished
        await emu.settle()
        try:
            inst = await wf.get(INSTANCE_ID)
            report["found"] = True
        except InstanceNotFoundError:
            report["found"] = False
            if report["acknowledged"]:
                return report  # lost: the parent fails the test
            # create() never returned: the client retries it with the same id
            inst = await wf.create(id=INSTANCE_ID, params={"steps": STEPS})
            journal(kind="created", name=INSTANCE_ID)
        report["status_after_settle"] = await inst.status()
        report["listed_after_settle"] = await wf.list()
        report["status"] = await inst.wait(timeout=CHILD_DEADLINE_S / 2)
        report["events"] = inst.events()
        report["listed"] = await wf.list()
    return report


def run_job(job: dict[str, Any]) -> None:
    global JOURNAL
    JOURNAL = job["journal"]
    state = Path(job["state"])
    hooks = CommitKiller(state, job.get("kill"), job.get("trace"))
    install_hooks(hooks)
    try:
        action = create if job["action"] == "create" else recover
        report = asyncio.run(action(state))
    finally:
        install_hooks(None)
        hooks.close()
    report["commits"] = hooks.counts
    report["pid"] = os.getpid()
    Path(job["report"]).write_text(json.dumps(report, default=str), encoding="utf-8")


def serve() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(job)
        _, status = os.waitpid(pid, 0)
        answer = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                  "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def _child(job: dict[str, Any]) -> None:
    """The forked child: run the job, never return into the server's loop."""
    code = 1
    try:
        signal.alarm(CHILD_DEADLINE_S)  # a hung child dies by SIGALRM, reported as such
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        run_job(job)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    if sys.argv[1] == "serve":
        serve()
    else:
        signal.alarm(CHILD_DEADLINE_S)
        run_job(json.loads(sys.argv[2]))


if __name__ == "__main__":
    main()
