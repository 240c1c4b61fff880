"""Instance files made ahead (`PreparedFiles`): what a claim hands over is a fresh, empty
file; companions are reused only once emptied and never after a remove; a process killed
with files made but not claimed leaves no instance behind; the pool stops at close."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator
from workflows_emulator.durable_object import (
    DurableObjectNamespace,
    DurableObjectStorage,
    PreparedFiles,
    _template,
)
from workflows_emulator.instance_catalog import PREPARED_DIR
from workflows_emulator.instance_store import SCHEMA, SCHEMA_VERSION, InstanceStore
from workflows_emulator.state_doctor import examine
from workflows_saga import WorkflowEntrypoint

THREAD = "workflows-emulator-prepare"


class OneStep(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        return await step.do("s", lambda: event["payload"].get("n", 1))


def _pool(tmp_path: Path, **options: Any) -> PreparedFiles:
    return PreparedFiles(tmp_path / "prepared", SCHEMA, SCHEMA_VERSION, background=False,
                         **options)


def _namespace(tmp_path: Path, pool: PreparedFiles) -> DurableObjectNamespace:
    return DurableObjectNamespace(tmp_path / "objects", prepared=pool)


def _open(ns: DurableObjectNamespace, name: str, create: bool = True) -> DurableObjectStorage:
    return ns.open(name, SCHEMA, SCHEMA_VERSION, create=create)


def _sizes(path: Path) -> dict[str, int | None]:
    return {suffix: (Path(f"{path}{suffix}").stat().st_size
                     if Path(f"{path}{suffix}").exists() else None)
            for suffix in ("", "-wal", "-shm")}


def _write(storage: DurableObjectStorage, rows: int) -> None:
    with storage.transaction():
        for n in range(rows):
            storage.put(f"k{n}", "x" * 500)


def test_a_claimed_file_is_the_template_with_empty_companions(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    target = tmp_path / "objects"
    target.mkdir()
    assert not pool.claim(target / "first.sqlite")  # none made yet: the caller writes one
    assert len(pool) > 0 and pool.made > 0
    path = target / "a.sqlite"
    assert pool.claim(path)
    assert path.read_bytes() == _template(SCHEMA, SCHEMA_VERSION)
    assert _sizes(path) == {"": len(path.read_bytes()), "-wal": 0, "-shm": 0}

    store = InstanceStore.open(_namespace(tmp_path, pool), "a2")
    try:
        assert store.is_new
        assert store.read_meta() is None and store.load() == {} and store.entries() == []
    finally:
        store.close()
    pool.close()


def test_a_reused_pair_is_emptied_before_a_new_file_gets_it(tmp_path: Path) -> None:
    pool = _pool(tmp_path, pairs=1)  # a single pair: the second object must reuse it
    ns = _namespace(tmp_path, pool)
    _open(ns, "warm-up").close()  # starts the pool (written in place)
    first = _open(ns, "first")
    _write(first, 20)
    assert Path(f"{first.path}-wal").stat().st_size > 0  # the WAL holds the commit
    first.close()  # SQLite checkpoints and deletes the names: the pair is free
    assert _sizes(first.path)["-wal"] is None
    _open(ns, "between").close()  # a claim wakes the pool, which empties the free pair
    assert pool.reused == 1
    second = _open(ns, "second")
    try:
        assert second.is_new
        assert second.list() == {}  # nothing of the first object's WAL came back
        assert second.sql.exec("SELECT count(*) AS n FROM _kv").one() == {"n": 0}
    finally:
        second.close()
    reopened = _open(ns, "first", create=False)
    try:
        assert len(reopened.list("k")) == 20  # and the first keeps all of its own
    finally:
        reopened.close()
    pool.close()


def test_the_pair_of_a_removed_object_is_never_reused(tmp_path: Path) -> None:
    pool = _pool(tmp_path, pairs=1)
    ns = _namespace(tmp_path, pool)
    _open(ns, "warm-up").close()
    gone = _open(ns, "gone")
    _write(gone, 3)
    gone.close()
    ns.remove("gone")  # a reader elsewhere could still hold its companions
    for n in range(3):
        _open(ns, f"later-{n}").close()
    assert pool.reused == 0
    pool.close()


def test_companions_left_without_their_file_are_replaced_not_replayed(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    ns = _namespace(tmp_path, pool)
    _open(ns, "warm-up").close()
    old = _open(ns, "old")
    _write(old, 5)
    wal = Path(f"{old.path}-wal").read_bytes()
    old.close()
    # What a kill between linking the companions and moving the file in leaves, or a
    # removal cut off after the file: a WAL with another file's frames, without its file.
    orphan = ns.path_for("x")
    Path(f"{orphan}-wal").write_bytes(wal)
    storage = _open(ns, "x")
    try:
        assert storage.list() == {}
    finally:
        storage.close()
    # Written in place (no file made ahead for it) the same holds.
    Path(f"{ns.path_for('y')}-wal").write_bytes(wal)
    in_place = ns.open("y", SCHEMA, SCHEMA_VERSION + 1)
    try:
        assert in_place.list() == {}
    finally:
        in_place.close()
    pool.close()


def test_close_stops_the_thread_and_removes_what_was_not_claimed(tmp_path: Path) -> None:
    pool = PreparedFiles(tmp_path / "prepared", SCHEMA, SCHEMA_VERSION)
    target = tmp_path / "objects"
    target.mkdir()
    pool.claim(target / "a.sqlite")  # starts the thread
    pool.close()
    pool.close()  # twice is harmless
    assert not any(t.name == THREAD for t in threading.enumerate())
    assert not (tmp_path / "prepared").exists()
    assert not pool.claim(target / "b.sqlite")  # a closed pool hands out nothing


async def test_an_emulator_stops_its_pool_at_close(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        wf = emu.workflow(OneStep, name="one")
        for n in range(20):
            assert (await (await wf.create(params={"n": n})).wait())["output"] == n
        batch = await wf.create_batch([{"params": {"n": n}} for n in range(30)])
        assert [(await i.wait())["output"] for i in batch] == list(range(30))
        assert len(await wf.list()) == 50
    assert not any(t.name == THREAD for t in threading.enumerate())
    assert not (state / PREPARED_DIR).exists()
    emu2 = Emulator(state)
    try:
        emu2.workflow(OneStep, name="one")
    finally:
        emu2.close_idle()
    assert not (state / PREPARED_DIR).exists()


_KILLED = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, {tests!r})
    from workflows_emulator import Emulator
    from test_instance_pool import OneStep

    async def main():
        emu = Emulator({state!r})
        wf = emu.workflow(OneStep, name="one")
        for n in range(12):
            await (await wf.create(id=f"i{{n}}", params={{"n": n}})).wait()
        pool = emu._catalog._prepared
        while len(pool) == 0:  # files made and not claimed
            await asyncio.sleep(0.01)
        os._exit(9)  # killed: nothing is closed

    asyncio.run(main())
""")


async def test_a_process_killed_with_unclaimed_files_leaves_no_phantom_instance(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    program = _KILLED.format(tests=str(Path(__file__).parent), state=str(state))
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 9, proc.stderr
    left = [p for p in (state / PREPARED_DIR).rglob("*") if p.is_file()]
    assert left  # made ahead and never claimed
    assert examine(state) == []  # the doctor finds nothing wrong: they are not instances

    async with Emulator(state) as emu:
        wf = emu.workflow(OneStep, name="one")
        assert sorted(i["id"] for i in await wf.list()) == sorted(f"i{n}" for n in range(12))
        assert all(i["status"] == "complete" for i in await wf.list())
        assert not left[0].exists()  # emptied on open, under the state lock
        inst = await wf.create(id="after", params={"n": 99})
        assert (await inst.wait())["output"] == 99
    # (a WAL the killed process had not checkpointed may stay beside its file)
    assert sorted(p.name for p in (state / "instances" / "one").glob("*.sqlite")) == sorted(
        f"{i}.sqlite" for i in [*(f"i{n}" for n in range(12)), "after"])


@pytest.mark.parametrize("companions", ["-wal", "-shm"])
async def test_companions_without_their_file_are_no_instance(tmp_path: Path,
                                                             companions: str) -> None:
    """What a kill between linking the companions and renaming the file in leaves."""
    state = tmp_path / "state"
    folder = state / "instances" / "one"
    folder.mkdir(parents=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{folder / 'x.sqlite'}{suffix}").write_bytes(b"")
    assert examine(state) == []
    async with Emulator(state) as emu:
        wf = emu.workflow(OneStep, name="one")
        assert await wf.list() == []
        inst = await wf.create(id="x", params={"n": 5})
        assert (await inst.wait())["output"] == 5
        assert [i["id"] for i in await wf.list()] == ["x"]
