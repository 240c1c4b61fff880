"""Instance files made ahead (`PreparedFiles`): a claimed file is the template; companions
are reused only once emptied (their old frames never replayed) and never after a remove;
a process killed with files made but unused leaves no instance behind; the pool stops at
close."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, batched_close
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


def test_a_claimed_file_is_the_template_with_no_companions(tmp_path: Path) -> None:
    pool = PreparedFiles(tmp_path / "prepared", SCHEMA, SCHEMA_VERSION)
    folder = tmp_path / "objects"
    folder.mkdir()
    assert not pool.claim(folder / "first.sqlite")  # none made yet: the caller writes one
    assert not pool.claim(folder / "second.sqlite")  # the thread starts with the second
    for _ in range(2000):  # the thread makes a batch
        if len(pool):
            break
        threading.Event().wait(0.01)
    path = folder / "a.sqlite"
    Path(f"{path}-wal").write_bytes(b"left by a removal cut off")
    assert pool.claim(path)
    assert path.read_bytes() == _template(SCHEMA, SCHEMA_VERSION)
    assert _sizes(path)["-wal"] is None and _sizes(path)["-shm"] is None
    store = InstanceStore.open(_namespace(tmp_path, pool), "b")
    try:
        assert store.is_new
        assert store.read_meta() is None and store.load() == {} and store.entries() == []
    finally:
        store.close()
    pool.close()


def _reopened_with(ns: DurableObjectNamespace, name: str, rows: int) -> DurableObjectStorage:
    """A new object with some rows (through SQLite: its WAL holds them)."""
    storage = _open(ns, name)
    _write(storage, 1)
    with storage.transaction():
        for n in range(rows):
            storage.put(f"{name}-{n}", "y" * 500)
    return storage


def test_a_reused_pair_holds_nothing_of_the_file_it_served(tmp_path: Path) -> None:
    pool = _pool(tmp_path, pairs=1)  # a single pair: the second object must reuse it
    ns = _namespace(tmp_path, pool)
    first = _reopened_with(ns, "first", 40)
    assert Path(f"{first.path}-wal").stat().st_size > 0  # the pair's WAL holds its frames
    first.close()  # SQLite checkpoints and deletes the names: the pair is free
    assert _sizes(first.path)["-wal"] is None

    second = _reopened_with(ns, "second", 2)  # fewer frames: old ones stay after them
    assert pool.reused == 1
    try:
        mine = {f"second-{n}" for n in range(2)} | {"k0"}
        assert set(second.list()) == mine
        # As a process killed now would leave it (nothing checkpointed): recovery from the
        # reused WAL finds this file's frames and nothing of the first file's.
        copy = tmp_path / "copy.sqlite"
        for suffix in ("", "-wal"):
            Path(f"{copy}{suffix}").write_bytes(Path(f"{second.path}{suffix}").read_bytes())
    finally:
        second.close()
    recovered = DurableObjectStorage(copy, SCHEMA, SCHEMA_VERSION, create=False)
    try:
        assert set(recovered.list()) == mine
        assert recovered.sql.exec("PRAGMA integrity_check").one() == {"integrity_check": "ok"}
    finally:
        recovered.close()
    reopened = _open(ns, "first", create=False)
    try:
        assert len(reopened.list("first-")) == 40  # and the first keeps all of its own
    finally:
        reopened.close()
    pool.close()


def test_the_pair_of_a_removed_object_is_never_reused(tmp_path: Path) -> None:
    pool = _pool(tmp_path, pairs=1)
    ns = _namespace(tmp_path, pool)
    gone = _reopened_with(ns, "gone", 3)
    (its_pair,) = [f for f in (tmp_path / "prepared").rglob("*-wal")
                   if os.path.samefile(f, f"{gone.path}-wal")]
    gone.close()
    ns.remove("gone")  # a reader elsewhere could still hold its companions
    for n in range(3):
        _reopened_with(ns, f"later-{n}", 1).close()
    assert not its_pair.exists()  # deleted once free, never lent again
    assert pool.reused == 2  # a new pair took its place, and serves on
    pool.close()


def test_removed_objects_do_not_use_up_the_pairs(tmp_path: Path) -> None:
    pool = _pool(tmp_path, pairs=2)
    ns = _namespace(tmp_path, pool)
    for n in range(5):
        _reopened_with(ns, f"gone-{n}", 1).close()
        ns.remove(f"gone-{n}")
    before = pool.reused
    for n in range(3):
        _reopened_with(ns, f"kept-{n}", 1).close()
    assert pool.reused > before  # pairs are still lent, and again
    pool.close()


def test_companions_left_without_their_file_are_replaced_not_replayed(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    ns = _namespace(tmp_path, pool)
    old = _reopened_with(ns, "old", 5)
    wal = Path(f"{old.path}-wal").read_bytes()
    old.close()
    # What a removal cut off after the file leaves: a WAL with another file's frames.
    for name, opened in (("x", _open(ns, "x")),
                         ("y", ns.open("y", SCHEMA, SCHEMA_VERSION + 1))):  # written in place
        Path(f"{ns.path_for(name)}-wal").write_bytes(wal)
        try:
            _write(opened, 1)
            assert opened.list() == {"k0": "x" * 500}
        finally:
            opened.close()
    pool.close()


def test_close_stops_the_thread_and_removes_what_was_not_used(tmp_path: Path) -> None:
    pool = PreparedFiles(tmp_path / "prepared", SCHEMA, SCHEMA_VERSION)
    ns = _namespace(tmp_path, pool)
    _reopened_with(ns, "a", 1).close()  # starts the thread
    pool.close()
    pool.close()  # twice is harmless
    assert not any(t.name == THREAD for t in threading.enumerate())
    assert not (tmp_path / "prepared").exists()
    late = _reopened_with(ns, "b", 1)  # a closed pool still writes files, in place
    late.close()
    reread = _open(ns, "b", create=False)
    try:
        assert reread.list("b-") == {"b-0": "y" * 500}
    finally:
        reread.close()


async def test_an_emulator_stops_its_pool_at_close(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        wf = emu.workflow(OneStep, name="one")
        for n in range(20):
            assert (await (await wf.create(params={"n": n})).wait())["output"] == n
        batch = await wf.create_batch([{"params": {"n": n}} for n in range(30)])
        assert [(await i.wait())["output"] for i in batch] == list(range(30))
        assert len(await wf.list()) == 50
        folders = [p for p in (state / PREPARED_DIR).iterdir() if p.is_dir()]
        assert len(folders) <= PreparedFiles.FOLDERS  # batches reuse them: bounded
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
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from workflows_emulator import Emulator
    from test_instance_pool import OneStep

    async def main():
        emu = Emulator({state!r})
        wf = emu.workflow(OneStep, name="one")
        for n in range(12):
            await (await wf.create(id=f"i{{n}}", params={{"n": n}})).wait()
        folder = Path({state!r}) / {prepared!r}
        for _ in range(1000):  # files made ahead (or companions kept) and not used
            if any(p.is_file() for p in folder.rglob("*")):
                break
            await asyncio.sleep(0.01)
        os._exit(9)  # killed: nothing is closed

    asyncio.run(main())
""")


async def test_a_process_killed_with_unclaimed_files_leaves_no_phantom_instance(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    program = _KILLED.format(tests=str(Path(__file__).parent), state=str(state),
                             prepared=PREPARED_DIR)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 9, proc.stderr
    left = [p for p in (state / PREPARED_DIR).rglob("*") if p.is_file()]
    assert left  # made ahead (or kept) and never used
    marker = state / PREPARED_DIR / "left-by-the-killed-process"
    marker.write_bytes(b"")
    assert examine(state) == []  # the doctor finds nothing wrong: they are not instances

    async with Emulator(state) as emu:
        wf = emu.workflow(OneStep, name="one")
        assert sorted(i["id"] for i in await wf.list()) == sorted(f"i{n}" for n in range(12))
        assert all(i["status"] == "complete" for i in await wf.list())
        assert not marker.exists()  # emptied on open, under the state lock
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


def test_one_object_makes_nothing_ahead(tmp_path: Path) -> None:
    # An emulator running one (long) instance has no thread competing with it.
    pool = PreparedFiles(tmp_path / "prepared", SCHEMA, SCHEMA_VERSION)
    folder = tmp_path / "objects"
    folder.mkdir()
    assert not pool.claim(folder / "only.sqlite")
    threading.Event().wait(0.05)
    assert pool.made == 0 and not list((tmp_path / "prepared").rglob("*.sqlite"))
    pool.close()


def test_a_reused_wal_is_empty_and_on_disk_before_it_is_lent_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine crash after the pair is lent again must not bring the previous owner's
    # frames back under the new name: the emptied WAL is synced before the link is made
    # (by a sync of its file system where there is one).
    events: list[tuple[str, int]] = []
    fsync, link = os.fsync, os.link

    def synced(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def linked(src: Any, dst: Any) -> None:
        events.append(("link", os.stat(src).st_ino))
        link(src, dst)

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "link", linked)
    syncfs = batched_close._SYNCFS
    if syncfs is not None:  # one sync of the file system, given a descriptor of the WAL
        def synced_fs(fd: int) -> int:
            events.append(("fsync", os.fstat(fd).st_ino))
            return syncfs(fd)

        monkeypatch.setattr(batched_close, "_SYNCFS", synced_fs)
    pool = _pool(tmp_path, pairs=1)
    ns = _namespace(tmp_path, pool)
    _reopened_with(ns, "first", 20).close()
    second = _reopened_with(ns, "second", 1)
    try:
        wal = os.stat(f"{second.path}-wal").st_ino
        assert pool.reused == 1
        first_link = events.index(("link", wal))
        relent = max(i for i, e in enumerate(events) if e == ("link", wal))
        assert first_link < events.index(("fsync", wal)) < relent
    finally:
        second.close()
        pool.close()


@pytest.mark.parametrize("pooled", [True, False])
def test_a_folder_removed_after_its_first_object_is_made_again(tmp_path: Path,
                                                               pooled: bool) -> None:
    """The folder of a namespace is made once per process; removed behind its back (a state
    directory wiped between runs), the next new object makes it again."""
    pool = _pool(tmp_path) if pooled else None
    folder = tmp_path / "objects"
    ns = DurableObjectNamespace(folder, prepared=pool)
    try:
        ns.open("a", SCHEMA, SCHEMA_VERSION).close()
        for path in sorted(folder.iterdir(), reverse=True):
            path.unlink()
        folder.rmdir()
        storage = ns.open("b", SCHEMA, SCHEMA_VERSION)
        try:
            storage.put("k", "v")
        finally:
            storage.close()
        assert (folder / "b.sqlite").is_file()
        assert not (folder / "a.sqlite").exists()
    finally:
        if pool is not None:
            pool.close()
