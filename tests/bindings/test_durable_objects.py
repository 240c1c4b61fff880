"""Durable Objects bindings: ids, stubs (RPC and fetch), ``ctx.storage`` (key-value, SQL,
transactions), persistence in the state directory and alarms on the emulator's clock.

Each test builds the namespace as the emulator does, on a real state directory
(``layout.do_dir``), with a `VirtualClock`; the object files are read back with plain
``sqlite3`` where the test is about what reached the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator.bindings.durable_objects import (
    ALARM_RETRY_START_MS,
    DurableObjectError,
    DurableObjectId,
    DurableObjectNamespace,
)
from workflows_emulator.bindings.layout import do_dir
from workflows_emulator.clock import RealClock, VirtualClock
from workflows_emulator.durable_object import OpenFiles
from workflows_emulator.errors import EmulatorError
from workflows_emulator.workers_shim import DurableObject, Env, Request, Response
from workflows_emulator.workers_shim.rpc import JsDict

START_MS = 1_800_000_000_000.0


class Counter(DurableObject):
    """The shape of a Python Durable Object on Cloudflare."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.calls = 0  # in memory: kept while the instance lives

    async def add(self, by: int) -> int:
        self.calls += 1
        value = (await self.ctx.storage.get("count") or 0) + by
        await self.ctx.storage.put("count", value)
        return int(value)

    async def calls_made(self) -> int:
        return self.calls

    async def echo(self, *args: Any) -> list[Any]:
        return list(args)

    async def whoami(self) -> list[Any]:
        return [self.ctx.id.toString(), self.ctx.id.name]

    async def fail(self, message: str) -> None:
        raise ValueError(message)

    async def give_tuple(self) -> Any:
        return (1, 2)

    async def env_var(self) -> Any:
        return self.env.GREETING

    async def fetch(self, request: Request) -> Response:
        body = await request.text()
        return Response(f"{request.method} {request.url} {body} "
                        f"{request.headers.get('x-test')}", status=201)


class Alarmed(DurableObject):
    """Records each alarm call; fails as often as told to."""

    async def schedule(self, at: float) -> None:
        await self.ctx.storage.setAlarm(at)

    async def configure(self, failures: int) -> None:
        await self.ctx.storage.put("failures", failures)

    async def alarm(self, alarm_info: Any) -> None:
        seen = await self.ctx.storage.get("seen") or []
        seen.append({"retryCount": alarm_info.retryCount, "isRetry": alarm_info.isRetry,
                     "at": clock_of(self).now_ms(),
                     "during": await self.ctx.storage.getAlarm()})
        await self.ctx.storage.put("seen", seen)
        failures = await self.ctx.storage.get("failures") or 0
        if failures:
            await self.ctx.storage.put("failures", failures - 1)
            raise RuntimeError("alarm failed on purpose")

    async def seen(self) -> Any:
        return await self.ctx.storage.get("seen")

    async def alarm_at(self) -> Any:
        return await self.ctx.storage.getAlarm()

    async def cancel(self) -> None:
        await self.ctx.storage.deleteAlarm()


class NoArgAlarm(DurableObject):
    async def schedule(self, at: float) -> None:
        await self.ctx.storage.setAlarm(datetime.fromtimestamp(at / 1000, UTC))

    async def alarm(self) -> None:
        await self.ctx.storage.put("fired", True)

    async def fired(self) -> Any:
        return await self.ctx.storage.get("fired")


class Plain(DurableObject):
    """No alarm handler, no fetch."""

    async def set_alarm(self) -> None:
        await self.ctx.storage.setAlarm(START_MS + 1000)


def clock_of(obj: Any) -> VirtualClock:
    clock: VirtualClock = obj.env.CLOCK
    return clock


class Harness:
    """A state directory, a virtual clock, and namespaces opened on them (closed at the end)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.clock = VirtualClock(START_MS)
        self.opened: list[DurableObjectNamespace] = []

    def namespace(self, cls: type, class_name: str | None = None) -> DurableObjectNamespace:
        name = class_name or cls.__name__
        ns = DurableObjectNamespace(cls, class_name=name, directory=do_dir(self.state, name),
                                    clock=self.clock)
        ns.attach_env(Env("test", {"NS": ns, "GREETING": "hi", "CLOCK": self.clock}))
        self.opened.append(ns)
        return ns

    def close(self) -> None:
        for ns in self.opened:
            ns.close()

    async def advance(self, ms: float, namespace: DurableObjectNamespace) -> None:
        """Move the clock and let the alarm handlers it started finish."""
        self.clock.advance(ms)
        await asyncio.sleep(0)
        await namespace.settle()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "state")
    try:
        yield h
    finally:
        h.close()


# -- ids ----------------------------------------------------------------------------------------


def test_id_from_name_is_deterministic_64_hex_and_per_class(harness: Harness) -> None:
    ns = harness.namespace(Counter)
    a, b = ns.idFromName("alice"), ns.id_from_name("alice")
    assert a.toString() == str(b) and len(a.toString()) == 64
    assert int(a.toString(), 16) >= 0 and a.toString() == a.toString().lower()
    assert a.equals(b) and a == b and a.name == "alice"
    assert not a.equals(ns.idFromName("bob"))
    # a namespace reopened on the same class gives the same id; another class another one
    assert harness.namespace(Counter).idFromName("alice") == a
    assert harness.namespace(Counter, "Other").idFromName("alice") != a


def test_id_from_string_round_trips_and_validates(harness: Harness) -> None:
    ns = harness.namespace(Counter)
    named = ns.idFromName("x")
    back = ns.idFromString(named.toString())
    assert back.equals(named) and back.name is None
    assert ns.idFromString(named.toString().upper()) == named
    unique = ns.newUniqueId()
    assert ns.id_from_string(str(unique)) == unique and unique.name is None
    assert ns.newUniqueId() != unique
    for bad in ("abc", "z" * 64, named.toString() + "0", 42):
        with pytest.raises(TypeError, match="Invalid Durable Object ID: must be 64 hex digits"):
            ns.idFromString(bad)  # type: ignore[arg-type]
    other = harness.namespace(Counter, "Other").idFromName("x").toString()
    for foreign in (other, "0" * 64):
        with pytest.raises(TypeError, match="not valid for this namespace"):
            ns.idFromString(foreign)
    with pytest.raises(TypeError, match="use getByName"):
        ns.get("x")  # type: ignore[arg-type]


# -- stubs ----------------------------------------------------------------------------------


async def test_rpc_keeps_state_per_id_and_isolates_ids(harness: Harness) -> None:
    ns = harness.namespace(Counter)
    alice = ns.get(ns.idFromName("alice"))
    assert await alice.add(2) == 2
    assert await alice.add(3) == 5
    assert await ns.getByName("alice").add(1) == 6  # same object by name
    assert await ns.get(ns.idFromString(ns.idFromName("alice").toString())).add(1) == 7
    assert await ns.get_by_name("bob").add(10) == 10
    # one live instance per id: its in-memory state saw every call
    assert await alice.calls_made() == 4
    assert await ns.getByName("bob").calls_made() == 1
    assert await alice.whoami() == [ns.idFromName("alice").toString(), "alice"]
    assert await alice.env_var() == "hi"
    files = sorted(p.name for p in do_dir(harness.state, "Counter").iterdir()
                   if p.suffix == ".sqlite")
    assert files == sorted(f"{ns.idFromName(n)}.sqlite" for n in ("alice", "bob"))


async def test_rpc_arguments_and_results_cross_as_over_rpc(harness: Harness) -> None:
    stub = harness.namespace(Counter).getByName("x")
    sent = {"a": [1, {"b": None}]}
    got = await stub.echo(sent, "s", 1.5)
    assert got == [sent, "s", 1.5]
    assert isinstance(got[0], JsDict) and got[0].a[1].b is None
    assert got[0] is not sent  # a copy, not the caller's object
    # trailing keywords arrive as one options dict, as Pyodide passes them
    assert await stub.echo(1, limit=5) == [1, {"limit": 5}]
    with pytest.raises(TypeError, match="cannot be sent over RPC"):
        await stub.echo((1, 2))
    with pytest.raises(TypeError, match="cannot be sent over RPC"):
        await stub.give_tuple()


async def test_rpc_errors_propagate_and_unknown_methods_are_named(harness: Harness) -> None:
    stub = harness.namespace(Counter).getByName("x")
    with pytest.raises(ValueError, match="went wrong"):
        await stub.fail("went wrong")
    with pytest.raises(AttributeError) as info:
        stub.nope  # noqa: B018
    message = str(info.value)
    assert 'does not implement the method "nope"' in message
    assert "add" in message and "fetch" in message
    with pytest.raises(AttributeError):
        stub._private  # noqa: B018
    assert await stub.add(1) == 1  # the object still works after a failed call


async def test_fetch_on_a_stub(harness: Harness) -> None:
    stub = harness.namespace(Counter).getByName("x")
    resp = await stub.fetch("https://do.local/path", method="POST", body="payload",
                            headers={"x-test": "yes"})
    assert resp.status == 201
    assert await resp.text() == "POST https://do.local/path payload yes"
    req = Request("https://do.local/r", method="PUT", body=b"b")
    assert await (await stub.fetch(req)).text() == "PUT https://do.local/r b None"
    again = Request("https://do.local/r", method="PUT", body=b"kept")
    assert await (await stub.fetch(again, method="PATCH")).text() == \
        "PATCH https://do.local/r kept None"
    with pytest.raises(TypeError, match="Fetch API cannot load: /relative"):
        await stub.fetch("/relative")
    with pytest.raises(TypeError, match="does not export a fetch"):
        await harness.namespace(Plain).getByName("p").fetch("https://x/")


async def test_calls_to_one_object_run_one_at_a_time(harness: Harness) -> None:
    log: list[str] = []

    class Slow(DurableObject):
        async def work(self, tag: str) -> None:
            log.append(f"start {tag}")
            await asyncio.sleep(0.01)
            log.append(f"end {tag}")

        async def reenter(self) -> int:
            # a call back into itself through its own stub does not wait for itself
            return int(await self.env.NS.getByName("s").add_one(1))

        async def add_one(self, n: int) -> int:
            return n + 1

    ns = harness.namespace(Slow)
    one, other = ns.getByName("s"), ns.getByName("t")
    await asyncio.gather(one.work("a"), one.work("b"), other.work("c"))
    a, b = log.index("start a"), log.index("start b")
    first, second = ("a", "b") if a < b else ("b", "a")
    assert log.index(f"end {first}") < log.index(f"start {second}")
    assert log.index("start c") < log.index(f"end {first}")  # another object is not blocked
    assert await asyncio.wait_for(one.reenter(), 5) == 2


async def test_block_concurrency_while_runs_before_the_first_call(harness: Harness) -> None:
    class Loader(DurableObject):
        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.loaded: Any = None
            ctx.blockConcurrencyWhile(self.load)

        async def load(self) -> None:
            await asyncio.sleep(0.01)
            self.loaded = await self.ctx.storage.get("v") or "fresh"

        async def value(self) -> Any:
            return self.loaded

    ns = harness.namespace(Loader)
    assert await ns.getByName("l").value() == "fresh"


# -- storage: key-value -----------------------------------------------------------------------


async def storage_of(harness: Harness, name: str = "kv") -> Any:
    """The ``ctx.storage`` of object ``name``, as the object's own code holds it."""
    ns = harness.namespace(Plain)
    return (await ns.live(ns.idFromName(name)).ready()).ctx.storage


async def test_storage_get_put_delete(harness: Harness) -> None:
    s = await storage_of(harness)
    assert await s.get("missing") is None
    await s.put("a", {"n": 1, "l": [1, "x", None], "b": b"\x00\xff"})
    got = await s.get("a")
    assert got == {"n": 1, "l": [1, "x", None], "b": b"\x00\xff"} and got.n == 1
    await s.put({"b": 2, "c": 3.5, "": "empty key"})
    assert await s.get(["c", "zz", "a", "b"]) == {"a": got, "b": 2, "c": 3.5}
    assert await s.get("") == "empty key"
    assert await s.delete("b") is True
    assert await s.delete("b") is False
    assert await s.delete(["c", "zz", ""]) == 2
    when = datetime(2030, 1, 2, 3, 4, 5)
    await s.put("when", when)
    assert await s.get("when") == when
    with pytest.raises(TypeError, match="undefined value"):
        await s.put("k", None)
    with pytest.raises(TypeError, match="cannot be stored"):
        await s.put("k", {1, 2})
    with pytest.raises(TypeError, match="keys must be strings"):
        await s.put("k", {1: "x"})
    with pytest.raises(TypeError, match="must be a string"):
        await s.get(5)
    with pytest.raises(DurableObjectError, match="2048 bytes"):
        await s.put("k" * 2049, 1)


async def test_storage_list_options(harness: Harness) -> None:
    s = await storage_of(harness)
    await s.put({"k1": 1, "k2": 2, "k3": 3, "k4": 4, "x1": 5})
    assert list(await s.list()) == ["k1", "k2", "k3", "k4", "x1"]
    assert list(await s.list(start="k2", end="k4")) == ["k2", "k3"]
    assert list(await s.list({"reverse": True, "limit": 2})) == ["x1", "k4"]
    assert list(await s.list(startAfter="k2", prefix="k")) == ["k3", "k4"]
    assert list(await s.list(prefix="k", reverse=True, limit=3)) == ["k4", "k3", "k2"]
    assert await s.list(prefix="x") == {"x1": 5}
    assert await s.list(prefix="%") == {}  # the prefix is not a LIKE pattern
    with pytest.raises(TypeError, match="both start and startAfter"):
        await s.list(start="a", startAfter="b")
    with pytest.raises(TypeError, match="List limit must be positive"):
        await s.list(limit=0)


async def test_transaction_commits_or_rolls_back(harness: Harness) -> None:
    s = await storage_of(harness)

    async def ok(txn: Any) -> int:
        await txn.put("t1", 1)
        s.sql.exec("CREATE TABLE IF NOT EXISTS rows (v INTEGER)")
        s.sql.exec("INSERT INTO rows VALUES (1)")
        return int(await txn.get("t1")) + 41

    assert await s.transaction(ok) == 42

    async def boom(txn: Any) -> None:
        await txn.put("t2", 2)
        await txn.delete("t1")
        s.sql.exec("INSERT INTO rows VALUES (2)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await s.transaction(boom)

    async def rolled(txn: Any) -> str:
        await txn.put("t3", 3)
        txn.rollback()
        return "done"

    assert await s.transaction(rolled) == "done"
    assert await s.list() == {"t1": 1}
    assert s.sql.exec("SELECT v FROM rows").toArray() == [{"v": 1}]

    def sync_fail() -> None:
        s.sql.exec("INSERT INTO rows VALUES (3)")
        raise KeyError("sync")

    with pytest.raises(KeyError):
        s.transactionSync(sync_fail)
    assert s.transaction_sync(lambda: s.sql.exec("SELECT count(*) AS n FROM rows").one().n) == 1


async def test_delete_all_erases_keys_and_tables_but_keeps_the_alarm(harness: Harness) -> None:
    ns = harness.namespace(Alarmed)
    stub = ns.getByName("a")
    await stub.schedule(START_MS + 60_000)
    live = ns.live(ns.idFromName("a"))
    s = live.instance.ctx.storage
    await s.put("k", 1)
    s.sql.exec("CREATE TABLE t (a)")
    await s.deleteAll()
    assert await s.list() == {}
    assert s.sql.exec("SELECT name FROM sqlite_master WHERE name = 't'").toArray() == []
    assert await s.getAlarm() == START_MS + 60_000
    await s.put("k", 2)  # still usable
    assert await s.get("k") == 2


# -- storage: SQL -------------------------------------------------------------------------------


async def test_sql_cursor_api(harness: Harness) -> None:
    s = await storage_of(harness)
    created = s.sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
    assert created.columnNames == [] and created.toArray() == []
    ins = s.sql.exec("INSERT INTO t (v, b) VALUES (?, ?), (?, ?), (?, ?)",
                     "x", b"\x01", "y", None, "z", None)
    assert (ins.rowsRead, ins.rowsWritten) == (0, 3)
    sel = s.sql.exec("SELECT id, v, b FROM t ORDER BY id")
    assert sel.columnNames == ["id", "v", "b"] == sel.column_names
    rows = sel.toArray()
    assert rows == [{"id": 1, "v": "x", "b": b"\x01"}, {"id": 2, "v": "y", "b": None},
                    {"id": 3, "v": "z", "b": None}]
    assert rows[0].v == "x"
    assert (sel.rowsRead, sel.rowsWritten) == (3, 0) == (sel.rows_read, sel.rows_written)
    assert sel.toArray() == []  # consumed
    assert s.sql.exec("SELECT v FROM t WHERE id = ?", 2).one().v == "y"
    assert s.sql.exec("SELECT 'Hello, ' || ? || '!' AS greeting", "world").one().greeting == \
        "Hello, world!"
    assert list(s.sql.exec("SELECT id, v FROM t ORDER BY id").raw()) == [
        [1, "x"], [2, "y"], [3, "z"]]
    assert s.sql.exec("SELECT id FROM t ORDER BY id").raw().toArray() == [[1], [2], [3]]
    assert [r.id for r in s.sql.exec("SELECT id FROM t ORDER BY id")] == [1, 2, 3]
    cur = s.sql.exec("SELECT id FROM t WHERE id < 3 ORDER BY id")
    assert [cur.next(), cur.next(), cur.next()] == [
        {"done": False, "value": {"id": 1}}, {"done": False, "value": {"id": 2}}, {"done": True}]
    upd = s.sql.exec("UPDATE t SET v = 'q' WHERE id > 1")
    assert (upd.rowsRead, upd.rowsWritten) == (2, 2)
    dele = s.sql.exec("DELETE FROM t WHERE id = 3")
    assert (dele.rowsRead, dele.rowsWritten) == (1, 1)
    assert s.sql.exec("INSERT INTO t (v) VALUES ('r') RETURNING id").one() == {"id": 3}
    assert s.sql.exec("SELECT ?1 AS a, ?1 AS b", 7).one() == {"a": 7, "b": 7}
    multi = s.sql.exec("INSERT INTO t (v) VALUES ('m'); SELECT count(*) AS n FROM t WHERE v = ?",
                       "m")
    assert multi.one().n == 1
    assert s.sql.databaseSize > 0 and s.sql.database_size == s.sql.databaseSize


async def test_sql_errors_are_shaped_like_cloudflares(harness: Harness) -> None:
    s = await storage_of(harness)
    s.sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    with pytest.raises(DurableObjectError,
                       match=r"Expected exactly one result from SQL query, but got no results\."):
        s.sql.exec("SELECT * FROM t").one()
    s.sql.exec("INSERT INTO t VALUES (1), (2)")
    with pytest.raises(DurableObjectError, match="but got multiple results"):
        s.sql.exec("SELECT * FROM t").one()
    with pytest.raises(DurableObjectError, match="no such table: nope: SQLITE_ERROR"):
        s.sql.exec("SELECT * FROM nope")
    with pytest.raises(DurableObjectError, match=r"UNIQUE constraint failed: t\.id: SQLITE_CONSTRAINT$"):
        s.sql.exec("INSERT INTO t VALUES (1)")
    with pytest.raises(DurableObjectError, match="Wrong number of parameter bindings"):
        s.sql.exec("SELECT ?, ?", 1)
    with pytest.raises(DurableObjectError, match="only the last statement can have parameters"):
        s.sql.exec("INSERT INTO t VALUES (?); SELECT 1", 5)
    with pytest.raises(DurableObjectError, match=r"storage.transaction\(\)"):
        s.sql.exec("BEGIN")
    with pytest.raises(DurableObjectError, match=r"storage.transaction\(\)"):
        s.sql.exec("SAVEPOINT x")
    for reserved in ("SELECT * FROM _kv", "DROP TABLE _alarm", "CREATE TABLE _kv (a)"):
        with pytest.raises(DurableObjectError, match="prohibited"):
            s.sql.exec(reserved)
    for refused in ("PRAGMA user_version = 7", "PRAGMA journal_mode = DELETE",
                    "ATTACH DATABASE 'elsewhere.db' AS other"):
        with pytest.raises(DurableObjectError, match="SQLITE_AUTH"):
            s.sql.exec(refused)
    assert [c.name for c in s.sql.exec("PRAGMA table_info(t)")] == ["id"]
    with pytest.raises(TypeError, match="SQL binding 1"):
        s.sql.exec("SELECT ?", {"a": 1})
    # the failed statements changed nothing, and the connection still works
    assert s.sql.exec("SELECT count(*) AS n FROM t").one().n == 2
    await s.put("still", "works")
    assert await s.get("still") == "works"


# -- persistence -----------------------------------------------------------------------------------


async def test_storage_survives_a_new_namespace_on_the_same_directory(harness: Harness) -> None:
    ns = harness.namespace(Counter)
    stub = ns.getByName("p")
    await stub.add(5)
    s = ns.live(ns.idFromName("p")).instance.ctx.storage
    await s.put("blob", {"raw": b"\x00\x01", "when": datetime(2031, 5, 6)})
    s.sql.exec("CREATE TABLE notes (body TEXT)")
    s.sql.exec("INSERT INTO notes VALUES (?)", "kept")
    ns.close()

    path = do_dir(harness.state, "Counter") / f"{ns.idFromName('p')}.sqlite"
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT body FROM notes").fetchall() == [("kept",)]
        assert raw.execute("SELECT value FROM _kv WHERE key = 'count'").fetchall() == [("5",)]
    finally:
        raw.close()

    again = harness.namespace(Counter)
    assert await again.getByName("p").add(1) == 6
    s2 = again.live(again.idFromName("p")).instance.ctx.storage
    assert await s2.get("blob") == {"raw": b"\x00\x01", "when": datetime(2031, 5, 6)}
    assert s2.sql.exec("SELECT body FROM notes").one().body == "kept"
    with pytest.raises(EmulatorError, match="namespace is closed"):
        await ns.getByName("p").add(1)


# -- alarms ----------------------------------------------------------------------------------------


async def test_alarm_fires_on_the_virtual_clock(harness: Harness) -> None:
    ns = harness.namespace(Alarmed)
    stub = ns.getByName("a")
    await stub.schedule(START_MS + 10_000.7)
    assert await stub.alarm_at() == START_MS + 10_000  # whole milliseconds
    await harness.advance(9_999, ns)
    assert await stub.seen() is None
    await harness.advance(1, ns)
    seen = await stub.seen()
    assert seen == [{"retryCount": 0, "isRetry": False, "at": START_MS + 10_000, "during": None}]
    assert await stub.alarm_at() is None  # cleared once it ran
    await harness.advance(100_000, ns)
    assert len(await stub.seen()) == 1

    # replaced and deleted alarms do not fire at their old times
    await stub.schedule(START_MS + 200_000)
    await stub.schedule(START_MS + 300_000)
    await harness.advance(200_000 - 110_000, ns)
    assert len(await stub.seen()) == 1
    await stub.cancel()
    await harness.advance(200_000, ns)
    assert len(await stub.seen()) == 1 and await stub.alarm_at() is None


async def test_alarm_without_info_argument_and_datetime(harness: Harness) -> None:
    ns = harness.namespace(NoArgAlarm)
    stub = ns.getByName("n")
    await stub.schedule(START_MS + 5_000)
    await harness.advance(5_000, ns)
    assert await stub.fired() is True


async def test_alarm_retries_with_backoff_after_a_raise(harness: Harness) -> None:
    ns = harness.namespace(Alarmed)
    stub = ns.getByName("r")
    await stub.configure(2)
    await stub.schedule(START_MS + 1_000)
    await harness.advance(1_000, ns)
    assert await stub.alarm_at() == START_MS + 1_000 + ALARM_RETRY_START_MS  # the retry, stored
    await harness.advance(ALARM_RETRY_START_MS, ns)
    await harness.advance(2 * ALARM_RETRY_START_MS, ns)
    seen = await stub.seen()
    assert [(s["retryCount"], s["isRetry"], s["at"]) for s in seen] == [
        (0, False, START_MS + 1_000),
        (1, True, START_MS + 3_000),
        (2, True, START_MS + 7_000),
    ]
    assert await stub.alarm_at() is None
    await harness.advance(1_000_000, ns)
    assert len(await stub.seen()) == 3


async def test_an_alarm_that_always_fails_is_dropped_after_six_retries(harness: Harness) -> None:
    ns = harness.namespace(Alarmed)
    stub = ns.getByName("f")
    await stub.configure(100)
    await stub.schedule(START_MS)
    await asyncio.sleep(0)
    await ns.settle()
    while (deadline := harness.clock.next_deadline()) is not None:  # each retry when due
        await harness.advance(deadline - harness.clock.now_ms(), ns)
    seen = await stub.seen()
    assert [s["retryCount"] for s in seen] == [0, 1, 2, 3, 4, 5, 6]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(seen)]
    assert gaps == [2_000, 4_000, 8_000, 16_000, 32_000, 64_000]
    assert await stub.alarm_at() is None


async def test_set_alarm_needs_a_handler_and_a_time(harness: Harness) -> None:
    with pytest.raises(TypeError, match="must have an alarm\\(\\) handler"):
        await harness.namespace(Plain).getByName("p").set_alarm()
    s = harness.namespace(Alarmed).live(DurableObjectId("0" * 64))
    with pytest.raises(TypeError, match="not of type 'date'"):
        s.set_alarm("soon")  # type: ignore[arg-type]


async def test_resume_alarms_after_reopen(harness: Harness) -> None:
    ns = harness.namespace(Alarmed)
    await ns.getByName("x").schedule(START_MS + 50_000)
    await ns.getByName("y").schedule(START_MS + 70_000)
    await ns.getByName("z").configure(0)  # a file without an alarm
    ns.close()
    harness.clock.advance(60_000)  # the process is down when x's alarm is due

    again = harness.namespace(Alarmed)
    assert again.resume_alarms() == 2
    await asyncio.sleep(0)
    await again.settle()  # x was due: it fires at once
    assert [s["at"] for s in await again.getByName("x").seen()] == [START_MS + 60_000]
    assert await again.getByName("y").seen() is None
    await harness.advance(10_000, again)
    assert [s["at"] for s in await again.getByName("y").seen()] == [START_MS + 70_000]
    assert await again.getByName("z").seen() is None


def test_resume_alarms_needs_a_running_loop(harness: Harness) -> None:
    with pytest.raises(EmulatorError, match="running loop"):
        harness.namespace(Alarmed).resume_alarms()


async def test_wait_until_runs_in_the_background(harness: Harness) -> None:
    class Later(DurableObject):
        async def start(self) -> str:
            async def later() -> None:
                await asyncio.sleep(0.01)
                await self.ctx.storage.put("later", "done")

            self.ctx.waitUntil(later())
            return "started"

        async def value(self) -> Any:
            return await self.ctx.storage.get("later")

    ns = harness.namespace(Later)
    assert await ns.getByName("w").start() == "started"
    assert await ns.getByName("w").value() is None
    await ns.settle()
    assert await ns.getByName("w").value() == "done"


async def test_objects_share_an_open_files_budget(tmp_path: Path) -> None:
    files = OpenFiles(2)
    clock = VirtualClock(START_MS)
    ns = DurableObjectNamespace(Counter, class_name="Counter", directory=tmp_path / "do",
                                clock=clock, files=files)
    try:
        for round_ in (1, 2):
            for i in range(5):
                assert await ns.getByName(f"o{i}").add(1) == round_
                assert len(files) <= 2
    finally:
        ns.close()
        files.finish()
    assert len(list((tmp_path / "do").glob("*.sqlite"))) == 5


async def test_alarm_on_the_real_clock(tmp_path: Path) -> None:
    """The dev server's clock: the alarm fires on the event loop's own timer."""
    clock = RealClock()
    ns = DurableObjectNamespace(NoArgAlarm, class_name="NoArgAlarm", directory=tmp_path / "do",
                                clock=clock)
    try:
        await ns.getByName("r").schedule(clock.now_ms() + 50)
        for _ in range(200):
            if await ns.getByName("r").fired():
                break
            await asyncio.sleep(0.01)
        assert await ns.getByName("r").fired() is True
    finally:
        ns.close()
