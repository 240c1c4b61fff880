"""Exactly one process drives a state directory (an OS ``flock``, released by the kernel).

Real subprocesses race on one state directory: a foreground ``trigger`` and a ``terminate``
from a second shell, ``dev`` started during a ``trigger``, two ``dev`` runs of a project that
takes two seconds to import, and a holder killed with SIGKILL. Readers (``list``,
``describe``) work meanwhile and write nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_projects import write_worker_project
from workflows_emulator import Emulator, StateDirectoryBusy
from workflows_emulator.state_lock import holder

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("workflows-emulator")

ENTRY = """
import asyncio
import os
import time
from pathlib import Path
from workflows_saga import WorkflowEntrypoint

time.sleep(float(os.environ.get("SLOW_IMPORT", "0")))
RUNS = Path(os.environ["RUNS_FILE"])


class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        async def s1():
            started = Path(str(RUNS) + ".started")
            again = started.exists()  # a retry after a crash does not hold
            with RUNS.open("a") as out:
                out.write("s1\\n")
            started.write_text("yes")
            await asyncio.sleep(0 if again else float(event["payload"].get("hold", 0)))
            return "one"

        async def undo(ctx):
            with RUNS.open("a") as out:
                out.write("undo s1\\n")

        await step.do("s1", s1, rollback=undo)
        return await step.do("s2", lambda: "two")
"""



@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_worker_project(tmp_path, ENTRY)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs.txt"


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=env)


def start(procs: list[subprocess.Popen[str]], *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    procs.append(proc)
    return proc


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def held_by_trigger(procs: list[subprocess.Popen[str]], project: Path, state: Path, runs: Path,
                    hold: int) -> tuple[subprocess.Popen[str], list[str], dict[str, str]]:
    """A foreground ``trigger`` whose step s1 has started and holds for ``hold`` seconds;
    with the common arguments and environment of the commands raced against it."""
    env = {**os.environ, "RUNS_FILE": str(runs)}
    common = ["--config", str(project), "--persist-to", str(state)]
    trigger = start(procs, "workflows", "trigger", "flow", json.dumps({"hold": hold}), "--id", "t1",
                    *common, env=env)
    wait_for(Path(f"{runs}.started"))
    return trigger, common, env


def tree_digest(state: Path) -> dict[str, str]:
    """Every file of ``state`` (but the lock and SQLite's shared-memory index) by content."""
    return {str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state.rglob("*")) if p.is_file() and not p.name.endswith("-shm")
            and p.name != "lock"}


def test_terminate_from_a_second_shell_is_refused_while_trigger_drives(
        project: Path, runs: Path, tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    state = tmp_path / "state"
    trigger, common, env = held_by_trigger(procs, project, state, runs, hold=3)

    term = cli("workflows", "instances", "terminate", "flow", "t1", *common, env=env)
    assert term.returncode == 1
    assert f"is in use by pid {trigger.pid}" in term.stderr
    assert "workflows trigger flow" in term.stderr  # the holder's command
    assert "only one process drives a state directory" in term.stderr

    before = tree_digest(state)
    listed = cli("workflows", "instances", "list", "flow", "--json", *common, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [("t1", "running")]
    described = cli("workflows", "instances", "describe", "flow", "t1", "--json", *common, env=env)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["steps"][0]["state"] == "running"
    assert tree_digest(state) == before  # readers wrote nothing

    out, err = trigger.communicate(timeout=30)
    assert trigger.returncode == 0, err
    assert "Status: complete" in out
    assert runs.read_text().splitlines() == ["s1"]  # never run twice, never rolled back
    assert holder(state) is None


def test_dev_during_a_foreground_trigger_is_refused(
        project: Path, runs: Path, tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    state = tmp_path / "state"
    trigger, common, env = held_by_trigger(procs, project, state, runs, hold=2)
    dev = cli("dev", "--port", "0", *common, env=env)
    assert dev.returncode == 1
    assert f"is in use by pid {trigger.pid}" in dev.stderr
    trigger.communicate(timeout=30)
    assert trigger.returncode == 0
    assert runs.read_text().splitlines() == ["s1"]


def test_two_dev_servers_of_a_slow_project_one_is_refused_before_importing(
        project: Path, runs: Path, tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "RUNS_FILE": str(runs), "SLOW_IMPORT": "2"}
    common = ["--config", str(project), "--persist-to", str(state), "--port", "0"]
    first = start(procs, "dev", *common, env=env)
    second = start(procs, "dev", *common, env=env)
    # One of them is refused at once (it never imports the two-second module)...
    deadline = time.monotonic() + 30
    while first.poll() is None and second.poll() is None:
        assert time.monotonic() < deadline, "neither dev server was refused"
        time.sleep(0.05)
    refused, serving = (first, second) if first.poll() is not None else (second, first)
    _, err = refused.communicate(timeout=10)
    assert refused.returncode == 1
    assert f"is in use by pid {serving.pid}" in err
    # ...and the other one serves.
    assert serving.stdout is not None
    line = serving.stdout.readline()
    while line and "Ready on" not in line:
        line = serving.stdout.readline()
    assert "Ready on http://127.0.0.1:" in line
    held = holder(state)
    assert held is not None and held.pid == serving.pid
    assert held.server is not None and held.server in line
    serving.send_signal(signal.SIGINT)
    serving.communicate(timeout=30)
    assert serving.returncode == 0
    assert holder(state) is None


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(
        project: Path, runs: Path, tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    state = tmp_path / "state"
    trigger, common, env = held_by_trigger(procs, project, state, runs, hold=30)
    with pytest.raises(StateDirectoryBusy, match=f"pid {trigger.pid}"):
        Emulator(state)
    os.killpg(trigger.pid, signal.SIGKILL)
    trigger.wait(timeout=10)
    assert holder(state) is None  # the kernel dropped the flock with the process
    # The next process takes over; the cut-off attempt of s1 is retried (at least once).
    restarted = cli("workflows", "instances", "send-event", "flow", "t1", "--type", "poke",
                    *common, env={**env, "SLOW_IMPORT": "0"})
    assert restarted.returncode == 0, restarted.stderr
    assert "complete" in cli("workflows", "instances", "list", "flow", *common, env=env).stdout
    assert runs.read_text().splitlines() == ["s1", "s1"]
