"""Storage faults are not workflow failures: a full disk, a read-only directory or an I/O
error stops the instance where it is (no rollback, no status change), raises a
`StorageError` naming the file and the cause, and the instance resumes once the fault is gone.

Faults come two ways: the storage seam (`install_hooks`, failing a chosen commit as SQLite
would) and, where this process may mount one, a real 2 MiB tmpfs filled to the brim.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import DamagedStateError, Emulator, InstanceNotFoundError, StorageError
from workflows_emulator.durable_object import StorageHooks, install_hooks
from workflows_emulator.introspection import introspect_workflow
from workflows_saga import NonRetryableError, WorkflowEntrypoint

pytestmark = pytest.mark.slow

RUNS: list[str] = []
"""Every step callback and rollback handler run, in order (a test clears it first)."""


class Saga(WorkflowEntrypoint):
    """Five steps with handlers; fails at the end when asked (so a rollback phase is due)."""

    async def run(self, event: Any, step: Any) -> Any:
        for n in range(1, 6):
            name = f"s{n}"

            async def forward(name: str = name) -> str:
                RUNS.append(name)
                return name

            async def undo(ctx: Any, name: str = name) -> None:
                RUNS.append(f"undo {name}")

            await step.do(name, forward, rollback=undo)
        if event["payload"].get("fail"):
            raise NonRetryableError("the saga fails")
        return "done"


class FailCommits(StorageHooks):
    """Fails every commit on instance files after the first ``after`` ones, as a full disk."""

    def __init__(self, after: int, error: str = "database or disk is full") -> None:
        self.after = after
        self.error = error
        self.seen = 0
        self.failed = 0
        self.on = True

    def before_commit(self, path: Path) -> None:
        if "instances" not in path.parts:
            return
        self.seen += 1
        if self.on and self.seen > self.after:
            self.failed += 1
            raise sqlite3.OperationalError(self.error)


@contextlib.contextmanager
def hooks(installed: StorageHooks) -> Iterator[StorageHooks]:
    old = install_hooks(installed)
    try:
        yield installed
    finally:
        install_hooks(old)


@pytest.mark.parametrize("fail", [False, True], ids=["forward", "rollback-due"])
async def test_a_full_disk_stops_the_instance_where_it_is_and_it_resumes(
        tmp_path: Path, fail: bool) -> None:
    RUNS.clear()
    async with Emulator(tmp_path / "state") as emu:
        wf = emu.workflow(Saga, name="saga")
        with hooks(FailCommits(after=5)) as fault:
            inst = await wf.create(id="s", params={"fail": fail})
            with pytest.raises(StorageError) as caught:
                await inst.wait()
            assert caught.value.cause == "the disk is full"
            assert caught.value.path.endswith(os.path.join("instances", "saga", "s.sqlite"))
            assert "the instance resumes from its last commit" in str(caught.value)
            status = await inst.status()
            assert status["status"] == "running" and status["rollback"] is None
            assert not [r for r in RUNS if r.startswith("undo")]  # no rollback ran
            assert fault.failed >= 1
            persisted = [s.name for s in inst.steps() if s.state == "success"]
            fault.on = False
        final = await inst.wait()
    assert final["status"] == ("errored" if fail else "complete")
    forward = [r for r in RUNS if not r.startswith("undo")]
    assert sorted(set(forward)) == ["s1", "s2", "s3", "s4", "s5"]
    for name in persisted:  # a step whose success was committed never runs again
        assert forward.count(name) == 1, (name, RUNS)
    if fail:
        assert [r for r in RUNS if r.startswith("undo")] == [f"undo s{n}" for n in range(5, 0, -1)]
        assert final["rollback"]["outcome"] == "complete"


async def test_a_fault_swallowed_by_run_still_stops_the_instance(tmp_path: Path) -> None:
    class Swallows(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            outcomes = []
            for name in ("a", "b", "c"):
                try:
                    outcomes.append(await step.do(name, lambda name=name: name))
                except Exception as exc:  # the user's code catches everything
                    outcomes.append(type(exc).__name__)
            return outcomes

    async with Emulator(tmp_path / "state") as emu:
        with hooks(FailCommits(after=4)) as fault:
            inst = await emu.workflow(Swallows, name="swallows").create(id="x")
            with pytest.raises(StorageError):
                await inst.wait()
            assert (await inst.status())["status"] == "running"
            fault.on = False
        final = await inst.wait()
    assert final == {"status": "complete", "error": None, "output": ["a", "b", "c"],
                     "rollback": None}


async def test_an_io_error_names_the_cause(tmp_path: Path) -> None:
    async with Emulator(tmp_path / "state") as emu:
        with hooks(FailCommits(after=2, error="disk I/O error")) as fault:
            inst = await emu.workflow(Saga, name="saga").create(id="io", params={})
            with pytest.raises(StorageError, match="a disk I/O error") as caught:
                await inst.wait()
            assert not isinstance(caught.value, DamagedStateError)
            fault.on = False
        assert (await inst.wait())["status"] == "complete"


async def test_a_creation_that_cannot_be_committed_leaves_no_instance(tmp_path: Path) -> None:
    """create() raises, the id is free (not found, not listed, not indexed later), and the
    same create succeeds once the disk is back."""
    async with Emulator(tmp_path / "state") as emu:
        wf = emu.workflow(Saga, name="saga")
        with hooks(FailCommits(after=0)), pytest.raises(StorageError, match="the disk is full"):
            await wf.create(id="c", params={})
        with pytest.raises(InstanceNotFoundError):
            await wf.get("c")
        assert await wf.list() == []
        inst = await wf.create(id="c", params={})
        assert (await inst.wait())["status"] == "complete"
        assert [r["id"] for r in await wf.list()] == ["c"]


async def test_a_create_retried_after_a_failed_commit_is_mocked_once(tmp_path: Path) -> None:
    """An open introspection session takes an instance once it exists: the failed create
    neither registers it nor leaves the id taken, and the retried one is mocked once."""
    RUNS.clear()
    async with Emulator(tmp_path / "state") as emu:
        wf = emu.workflow(Saga, name="saga")
        async with introspect_workflow(wf) as session:
            await session.modify_all(lambda m: m.mock_step_result("s1", "mocked"))
            with hooks(FailCommits(after=0)), pytest.raises(StorageError):
                await wf.create(id="c", params={})
            inst = await wf.create(id="c", params={})
            assert (await inst.wait())["status"] == "complete"
            assert [i.id for i in await session.get()] == ["c"]
    assert RUNS == ["s2", "s3", "s4", "s5"]  # s1 mocked


# -- a real small filesystem ------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for this test (skipped where this process may not mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; return the filler file."""
    filler = folder / f"filler-{uuid.uuid4().hex}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


class Big(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("first", lambda: "small")
        await step.sleep("nap", "1 hour")
        for n in range(10):
            await step.do(f"big{n}", lambda n=n: f"{n}:" + "x" * 20_000)
        return "done"


async def test_a_really_full_disk_stops_the_instance_and_it_resumes(tiny_disk: Path) -> None:
    async with Emulator(tiny_disk / "state") as emu:
        inst = await emu.workflow(Big, name="big").create(id="b")
        assert (await inst.wait(until="waiting"))["status"] == "waiting"
        filler = fill(tiny_disk)
        with pytest.raises(StorageError, match="the disk is full") as caught:
            await inst.wait()  # the nap ends: waking and the big steps need room
        assert caught.value.path.endswith("b.sqlite")
        # Which write runs out of room first (waking, or the sleep's end) depends on how much
        # of the WAL file can be reused; either way the status is the last one committed.
        status = await inst.status()
        assert status["status"] in ("waiting", "running") and status["error"] is None
        filler.unlink()
        final = await inst.wait()
    assert final["status"] == "complete" and final["output"] == "done"


def test_a_read_only_state_directory_says_so(tiny_disk: Path) -> None:
    state = tiny_disk / "state"
    Emulator(state).close_idle()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(StorageError, match="read-only") as caught:
        Emulator(state)
    assert str(state) in str(caught.value)
