"""A child process for the Durable Object crash tests: workflow steps that write a Durable
Object, in one state directory, killed at one commit.

Usage::

    python do_commit_kill.py run JOB_JSON   # run one job in this process
    python do_commit_kill.py serve          # fork server: one JSON job per stdin line

A job is a JSON object: ``state`` (the state directory), ``report`` (where the JSON report
goes), ``log`` (stdout/stderr in ``serve`` mode), ``trace`` (``null``, or a file that gets
one line per commit of the instance file or the object file: which file, in order) and
``kill`` (``null``, or ``["after", k]`` / ``["before", k]``: ``kill -9`` this process right
after / before the k-th commit counted over those two files).

Each run opens the state, binds the ``Ledger`` Durable Object class as the emulator binds
``env.LEDGER``, registers the workflow (which resumes an unfinished instance) and creates
the instance unless it exists, then waits for it. Step ``s<i>`` calls
``ledger.record(i)``, one storage transaction that bumps ``count`` and writes ``op:<i>``
and a SQL row (and does nothing if ``op:<i>`` is there already: a step re-run after a kill
writes nothing twice).

``serve`` imports the emulator once and forks one child per job, answering each with one
JSON line ``{"signal": n | null, "exit": code | null}`` once the child has ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from workflows_emulator import Emulator, InstanceNotFoundError, VirtualClock
from workflows_emulator.bindings.durable_objects import DurableObjectNamespace
from workflows_emulator.bindings.layout import do_dir
from workflows_emulator.durable_object import StorageHooks, install_hooks
from workflows_emulator.workers_shim import DurableObject, Env
from workflows_saga import WorkflowEntrypoint

WORKFLOW = "do-steps"
INSTANCE_ID = "do-1"
CLASS_NAME = "Ledger"
OBJECT_NAME = "ledger"
STEPS = 3
CLOCK_START_MS = 1_800_000_000_000.0
NO_DELAY = {"retries": {"limit": 1, "delay": 0}}
CHILD_DEADLINE_S = 60


class Ledger(DurableObject):
    """Records each step once, atomically: a counter, a key per step and a SQL row."""

    async def record(self, n: int) -> int:
        storage = self.ctx.storage

        async def write(txn: Any) -> int:
            done = await txn.get(f"op:{n}")
            if done is not None:
                return int(done)
            count = (await txn.get("count") or 0) + 1
            await txn.put({"count": count, f"op:{n}": count})
            storage.sql.exec("CREATE TABLE IF NOT EXISTS ops (n INTEGER PRIMARY KEY, seq INTEGER)")
            storage.sql.exec("INSERT INTO ops (n, seq) VALUES (?, ?)", n, count)
            return int(count)

        return int(await storage.transaction(write))

    async def contents(self) -> dict[str, Any]:
        storage = self.ctx.storage
        has_table = storage.sql.exec(
            "SELECT count(*) AS n FROM sqlite_master WHERE name = 'ops'").one().n
        rows = storage.sql.exec("SELECT n, seq FROM ops ORDER BY n").raw().toArray() if has_table else []
        return {"kv": dict(await storage.list()), "rows": rows}


class DoSteps(WorkflowEntrypoint):
    """Three steps, each recording itself in the ledger object."""

    async def run(self, event: Any, step: Any) -> list[int]:
        ledger = self.env.LEDGER.getByName(OBJECT_NAME)
        out = []
        for i in range(1, STEPS + 1):
            async def record(ctx: Any, i: int = i) -> int:
                return int(await ledger.record(i))

            out.append(await step.do(f"s{i}", record, config=NO_DELAY))
        return out


def object_file(state: Path, namespace: DurableObjectNamespace) -> Path:
    return (do_dir(state, CLASS_NAME) / f"{namespace.idFromName(OBJECT_NAME)}.sqlite").resolve()


def instance_file(state: Path) -> Path:
    return (state / "instances" / WORKFLOW / f"{INSTANCE_ID}.sqlite").resolve()


class CommitKiller(StorageHooks):
    """Counts the commits of the instance file and the object file; kills at the chosen one."""

    def __init__(self, files: dict[Path, str], kill: list[Any] | None, trace: str | None) -> None:
        self.files = files
        self.kill = (kill[0], int(kill[1])) if kill else None
        self.trace = trace
        self.counts = {"before": 0, "after": 0}

    def before_commit(self, path: Path) -> None:
        self._hook("before", path)

    def after_commit(self, path: Path) -> None:
        self._hook("after", path)

    def _hook(self, when: str, path: Path) -> None:
        kind = self.files.get(Path(path).resolve())
        if kind is None:
            return
        self.counts[when] += 1
        if self.trace is not None and when == "after":
            with open(self.trace, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"k": self.counts[when], "file": kind}) + "\n")
        if self.kill == (when, self.counts[when]):
            os.kill(os.getpid(), signal.SIGKILL)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    state = Path(job["state"])
    report: dict[str, Any] = {}
    async with Emulator(state, clock=VirtualClock(CLOCK_START_MS)) as emu:
        namespace = DurableObjectNamespace(Ledger, class_name=CLASS_NAME,
                                           directory=do_dir(state, CLASS_NAME), clock=emu.clock,
                                           files=emu.files)
        env = Env("do_commit_kill", {"LEDGER": namespace})
        namespace.attach_env(env)
        hooks = CommitKiller({object_file(state, namespace): "object",
                              instance_file(state): "instance"}, job.get("kill"), job.get("trace"))
        install_hooks(hooks)
        try:
            wf = emu.workflow(DoSteps, name=WORKFLOW, env=env)  # resumes an unfinished instance
            try:
                inst = await wf.get(INSTANCE_ID)
                report["found"] = True
            except InstanceNotFoundError:
                report["found"] = False
                inst = await wf.create(id=INSTANCE_ID)
            report["status"] = await inst.wait(timeout=CHILD_DEADLINE_S / 2)
            report["contents"] = await namespace.getByName(OBJECT_NAME).contents()
        finally:
            install_hooks(None)
            namespace.close()
        report["commits"] = hooks.counts
    return report


def run_job(job: dict[str, Any]) -> None:
    report = asyncio.run(run(job))
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
        signal.alarm(CHILD_DEADLINE_S)
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
