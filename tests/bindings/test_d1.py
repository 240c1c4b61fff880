"""The D1 binding (`workflows_emulator.bindings.d1`) against D1's documented API, on real files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator.bindings.d1 import (
    MIGRATIONS_TABLE,
    D1Database,
    D1Error,
    D1MigrationError,
    D1PreparedStatement,
    apply_migrations,
    list_unapplied,
    migration_names,
    script_statements,
)
from workflows_emulator.errors import StorageError
from workflows_emulator.workers_shim.rpc import JsDict

META_TYPES = {"served_by": str, "served_by_primary": bool, "total_attempts": int,
              "timings": dict, "duration": float, "changes": int, "last_row_id": int,
              "changed_db": bool, "size_after": int, "rows_read": int, "rows_written": int}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "d1" / "db.sqlite"


@pytest.fixture
def db(path: Path) -> Iterator[D1Database]:
    with D1Database(path) as database:
        yield database


async def _people(db: D1Database) -> None:
    await db.exec("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)")
    await db.batch([db.prepare("INSERT INTO people (name, age) VALUES (?, ?)").bind(n, a)
                    for n, a in (("ada", 36), ("bob", 41), ("cy", None))])


# -- results -----------------------------------------------------------------------------------


async def test_all_returns_success_meta_and_rows_as_objects(db: D1Database) -> None:
    await _people(db)
    result = await db.prepare("SELECT name, age FROM people ORDER BY id").all()
    assert isinstance(result, JsDict)
    assert list(result) == ["success", "meta", "results"]
    assert result.success is True
    assert result.results == [{"name": "ada", "age": 36}, {"name": "bob", "age": 41},
                              {"name": "cy", "age": None}]
    assert result.results[0].name == "ada"  # rows are JS objects too
    meta = result.meta
    assert set(meta) == set(META_TYPES)
    for key, kind in META_TYPES.items():
        assert isinstance(meta[key], kind), (key, meta[key])
    assert meta.timings == {"sql_duration_ms": meta.duration}
    assert (meta.changes, meta.rows_read, meta.rows_written, meta.changed_db) == (0, 3, 0, False)
    assert meta.size_after == path_size(db)


def path_size(db: D1Database) -> int:
    with sqlite3.connect(db.path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return int(pages * size)


async def test_run_reports_changes_last_row_id_and_rows_written(db: D1Database) -> None:
    await _people(db)
    result = await db.prepare("INSERT INTO people (name) VALUES (?)").bind("dee").run()
    assert result.success is True and result.results == []
    assert (result.meta.changes, result.meta.last_row_id) == (1, 4)
    assert (result.meta.rows_read, result.meta.rows_written, result.meta.changed_db) == (0, 1, True)
    updated = await db.prepare("UPDATE people SET age = 1 WHERE age IS NULL").run()
    assert (updated.meta.changes, updated.meta.rows_read, updated.meta.rows_written) == (2, 2, 2)
    assert updated.meta.last_row_id == 4  # unchanged by an UPDATE
    deleted = await db.prepare("DELETE FROM people WHERE id = ?").bind(1).run()
    assert (deleted.meta.changes, deleted.meta.rows_read, deleted.meta.rows_written) == (1, 1, 1)
    # run() of a query returns its rows, as current D1 does
    rows = await db.prepare("SELECT id FROM people ORDER BY id").run()
    assert rows.results == [{"id": 2}, {"id": 3}, {"id": 4}]


async def test_first_returns_the_row_a_column_or_none(db: D1Database) -> None:
    await _people(db)
    stmt = db.prepare("SELECT * FROM people ORDER BY id")
    assert await stmt.first() == {"id": 1, "name": "ada", "age": 36}
    assert await stmt.first("name") == "ada"
    assert await db.prepare("SELECT age FROM people WHERE id = 3").first("age") is None
    empty = db.prepare("SELECT * FROM people WHERE id = 99")
    assert await empty.first() is None
    assert await empty.first("nope") is None  # no row: no column check
    with pytest.raises(D1Error) as info:
        await stmt.first("nope")
    assert str(info.value) == "D1_COLUMN_NOTFOUND: Column not found (nope)"


async def test_raw_returns_lists_with_optional_column_names(db: D1Database) -> None:
    await _people(db)
    stmt = db.prepare("SELECT id, name FROM people WHERE id < 3 ORDER BY id")
    assert await stmt.raw() == [[1, "ada"], [2, "bob"]]
    with_names = [["id", "name"], [1, "ada"], [2, "bob"]]
    assert await stmt.raw(columnNames=True) == with_names
    assert await stmt.raw(column_names=True) == with_names
    assert await stmt.raw({"columnNames": True}) == with_names
    assert await stmt.raw(columnNames=False) == with_names[1:]
    none = db.prepare("SELECT id, name FROM people WHERE id > 99")
    assert await none.raw(columnNames=True) == [["id", "name"]]
    with pytest.raises(TypeError, match="columnNames"):
        await stmt.raw(names=True)


# -- binding -----------------------------------------------------------------------------------


async def test_bind_returns_a_new_statement(db: D1Database) -> None:
    stmt = db.prepare("SELECT ? AS v")
    bound = stmt.bind("x")
    assert isinstance(bound, D1PreparedStatement) and bound is not stmt
    assert (stmt.params, bound.params, bound.statement) == ([], ["x"], "SELECT ? AS v")
    assert await bound.first("v") == "x"
    assert await stmt.bind("y").first("v") == "y"


async def test_bind_types_arrive_as_d1_stores_them(db: D1Database) -> None:
    stmt = db.prepare("SELECT typeof(?1) AS t, ?1 AS v")
    # numbers are JS doubles: bound as REAL; integral values come back as int
    assert await stmt.bind(5).first() == {"t": "real", "v": 5}
    assert await stmt.bind(2.5).first() == {"t": "real", "v": 2.5}
    assert await stmt.bind(True).first() == {"t": "real", "v": 1}
    assert await stmt.bind(False).first() == {"t": "real", "v": 0}
    assert await stmt.bind(None).first() == {"t": "null", "v": None}
    assert await stmt.bind("é😀").first() == {"t": "text", "v": "é😀"}
    for data in (b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")):
        assert await stmt.bind(data).first() == {"t": "blob", "v": [0, 255]}
    assert await db.prepare("SELECT ? / 2 AS half").bind(3).first("half") == 1.5
    await db.exec("CREATE TABLE t (s TEXT)")
    await db.prepare("INSERT INTO t VALUES (?)").bind(5).run()
    assert await db.prepare("SELECT s FROM t").first("s") == "5.0"  # as on D1


@pytest.mark.parametrize(("value", "message"), [
    ({"a": 1}, "D1_TYPE_ERROR: Type 'object' not supported for value '{'a': 1}'"),
    ([1, 2], "D1_TYPE_ERROR: Type 'object' not supported for value '[1, 2]'"),
    ((1,), "D1_TYPE_ERROR: Type 'object' not supported for value '(1,)'"),
    (2**60, f"D1_TYPE_ERROR: Type 'bigint' not supported for value '{2**60}'"),
])
def test_bind_refuses_values_d1_cannot_store(db: D1Database, value: Any, message: str) -> None:
    with pytest.raises(D1Error) as info:
        db.prepare("SELECT ?").bind(value)
    assert str(info.value) == message


def test_bind_names_a_callable_a_function(db: D1Database) -> None:
    with pytest.raises(D1Error, match=r"^D1_TYPE_ERROR: Type 'function' not supported"):
        db.prepare("SELECT ?").bind(len)


async def test_result_values_cross_as_js_numbers(db: D1Database) -> None:
    row = await db.prepare(
        "SELECT 2.0 AS two, 1e300 * 1e10 AS inf, 9007199254740993 AS big, 7 / 2 AS q").first()
    assert row == {"two": 2, "inf": None, "big": 9007199254740992.0, "q": 3}
    assert type(row["two"]) is int and type(row["big"]) is float


async def test_parameters_by_number_and_in_several_statements(db: D1Database) -> None:
    assert await db.prepare("SELECT ?2 AS b, ?1 AS a").bind("A", "B").first() == {"b": "B",
                                                                                  "a": "A"}
    # D1 binds named parameters by position too
    assert await db.prepare("SELECT :x AS x, @y AS y").bind("X", "Y").first() == {"x": "X",
                                                                                 "y": "Y"}
    await db.exec("CREATE TABLE u (x)")
    result = await db.prepare("INSERT INTO u VALUES (1); INSERT INTO u VALUES (2)").run()
    assert result.meta.changes == 2
    assert await db.prepare("SELECT 1; SELECT ? AS v").bind(3).first("v") == 3
    with pytest.raises(D1Error, match="only the last statement can have parameters"):
        await db.prepare("SELECT ?; SELECT 1").bind(3).run()


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sql", "params", "message"), [
    ("SELECT * FROM nosuch", (), "D1_ERROR: no such table: nosuch: SQLITE_ERROR"),
    ("SELEC 1", (), 'D1_ERROR: near "SELEC": syntax error at offset 0: SQLITE_ERROR'),
    ("SELECT 1;\n  SELECT nosuchcol FROM people", (),
     "D1_ERROR: no such column: nosuchcol at offset 7: SQLITE_ERROR"),
    ("INSERT INTO people (id, name) VALUES (1, 'x')", (),
     "D1_ERROR: UNIQUE constraint failed: people.id: SQLITE_CONSTRAINT "
     "(extended: SQLITE_CONSTRAINT_PRIMARYKEY)"),
    ("INSERT INTO people (name) VALUES (NULL)", (),
     "D1_ERROR: NOT NULL constraint failed: people.name: SQLITE_CONSTRAINT "
     "(extended: SQLITE_CONSTRAINT_NOTNULL)"),
    ("INSERT INTO people (id) VALUES (?)", (1.5,), "D1_ERROR: datatype mismatch: SQLITE_MISMATCH"),
    ("SELECT ?1, ?2", (1,), "D1_ERROR: Wrong number of parameter bindings for SQL query."),
    ("   ", (), "D1_ERROR: No SQL statements detected."),
    ("-- just a comment", (), "D1_ERROR: No SQL statements detected."),
    ("/* just a comment */", (), "D1_ERROR: SQL code did not contain a statement."),
    ("SELECT 1;;", (), "D1_ERROR: SQL code did not contain a statement."),
    ("ATTACH DATABASE 'other.db' AS other", (), "D1_ERROR: not authorized: SQLITE_AUTH"),
    ("CREATE TABLE _cf_mine (a)", (), "D1_ERROR: not authorized: SQLITE_AUTH"),
])
async def test_errors_read_as_d1_reports_them(db: D1Database, sql: str, params: tuple[Any, ...],
                                              message: str) -> None:
    await _people(db)
    with pytest.raises(D1Error) as info:
        await db.prepare(sql).bind(*params).run()
    assert str(info.value) == message


@pytest.mark.parametrize("sql", ["BEGIN TRANSACTION", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
                                 "SAVEPOINT a", "RELEASE a", "END"])
async def test_transaction_statements_are_refused(db: D1Database, sql: str) -> None:
    with pytest.raises(D1Error, match=r"^D1_ERROR: To execute a transaction, please use the "):
        await db.prepare(sql).run()
    assert await db.prepare("SELECT 1 AS one").first("one") == 1  # still usable


async def test_foreign_keys_are_enforced(db: D1Database) -> None:
    await db.exec("CREATE TABLE p (id INTEGER PRIMARY KEY)\n"
                  "CREATE TABLE c (p INTEGER REFERENCES p(id))")
    with pytest.raises(D1Error, match="FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"):
        await db.prepare("INSERT INTO c VALUES (5)").run()


# -- batch and exec ----------------------------------------------------------------------------


async def test_batch_returns_one_result_per_statement(db: D1Database) -> None:
    await _people(db)
    results = await db.batch([
        db.prepare("INSERT INTO people (name) VALUES (?)").bind("eve"),
        db.prepare("SELECT count(*) AS n FROM people"),
    ])
    assert [r.success for r in results] == [True, True]
    assert results[0].meta.changes == 1 and results[0].results == []
    assert results[1].results == [{"n": 4}]


async def test_a_failing_batch_leaves_nothing_behind(db: D1Database) -> None:
    await _people(db)
    with pytest.raises(D1Error) as info:
        await db.batch([
            db.prepare("INSERT INTO people (name) VALUES (?)").bind("eve"),
            db.prepare("INSERT INTO nosuch VALUES (1)"),
        ])
    assert str(info.value) == "D1_ERROR: no such table: nosuch: SQLITE_ERROR"
    names = await db.prepare("SELECT name FROM people ORDER BY id").raw()
    assert names == [["ada"], ["bob"], ["cy"]]


async def test_batch_checks_its_input(db: D1Database) -> None:
    with pytest.raises(D1Error, match=r"^D1_ERROR: No SQL statements detected\.$"):
        await db.batch([])
    with pytest.raises(TypeError, match="prepared statements"):
        await db.batch(["SELECT 1"])  # type: ignore[list-item]


async def test_exec_runs_each_line_and_counts_them(db: D1Database) -> None:
    result = await db.exec("CREATE TABLE u (x);\nINSERT INTO u VALUES (1);\n\n-- note\n"
                           "INSERT INTO u VALUES (2); INSERT INTO u VALUES (3);\n")
    assert result == {"count": 3, "duration": result.duration}
    assert isinstance(result.duration, float)
    assert await db.prepare("SELECT x FROM u ORDER BY x").raw() == [[1], [2], [3]]


async def test_a_failing_exec_keeps_nothing_and_names_the_first_line(db: D1Database) -> None:
    await db.exec("CREATE TABLE u (x)")
    with pytest.raises(D1Error) as info:
        await db.exec("INSERT INTO u VALUES (1);\nINSERT INTO nosuch VALUES (1);")
    assert str(info.value) == ("D1_EXEC_ERROR: Error in line 1: INSERT INTO u VALUES (1);: "
                               "no such table: nosuch: SQLITE_ERROR")
    assert await db.prepare("SELECT count(*) AS n FROM u").first("n") == 0
    with pytest.raises(D1Error, match=r"^D1_EXEC_ERROR: Error in line 1: CREATE TABLE v \(: "
                                      r"incomplete input: SQLITE_ERROR$"):
        await db.exec("CREATE TABLE v (\n  x INTEGER\n);")  # exec splits on newlines


# -- the file ----------------------------------------------------------------------------------


async def test_writes_persist_across_reopen_in_a_plain_sqlite_file(path: Path) -> None:
    with D1Database(path) as db:
        await _people(db)
    assert path.is_file()
    with sqlite3.connect(path) as conn:  # the user's own sqlite3 can read it
        rows = conn.execute("SELECT name FROM people ORDER BY id").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert rows == [("ada",), ("bob",), ("cy",)] and mode == "wal"
    with D1Database(path) as again:
        assert await again.prepare("SELECT count(*) AS n FROM people").first("n") == 3


async def test_a_second_connection_sees_committed_writes(path: Path) -> None:
    with D1Database(path) as one, D1Database(path) as two:
        await one.exec("CREATE TABLE k (v)")
        await one.prepare("INSERT INTO k VALUES (?)").bind("first").run()
        assert await two.prepare("SELECT v FROM k").first("v") == "first"
        await two.batch([two.prepare("UPDATE k SET v = 'second'")])
        assert await one.prepare("SELECT v FROM k").first("v") == "second"


async def test_another_process_shares_the_file(path: Path) -> None:
    script = ("import asyncio, sys\n"
              "from workflows_emulator.bindings.d1 import D1Database\n"
              "async def main():\n"
              "    with D1Database(sys.argv[1]) as db:\n"
              "        await db.prepare('INSERT INTO k VALUES (?)').bind('other process').run()\n"
              "        print((await db.prepare('SELECT count(*) AS n FROM k').first('n')))\n"
              "asyncio.run(main())\n")
    with D1Database(path) as db:
        await db.exec("CREATE TABLE k (v)")
        await db.prepare("INSERT INTO k VALUES (?)").bind("this process").run()
        proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "2"
        assert await db.prepare("SELECT v FROM k ORDER BY rowid").raw() == [
            ["this process"], ["other process"]]


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "d1" / "bad.sqlite"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError) as info:
        D1Database(bad)
    assert str(bad) in str(info.value) and "not a SQLite database" in str(info.value)


async def test_a_closed_database_refuses_calls(path: Path) -> None:
    db = D1Database(path)
    db.close()
    db.close()  # idempotent
    with pytest.raises(RuntimeError, match="is closed"):
        await db.prepare("SELECT 1").all()


# -- migrations --------------------------------------------------------------------------------


def _migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


def test_migration_names_follow_wranglers_order(tmp_path: Path) -> None:
    folder = _migrations(tmp_path / "m", {"10_c.sql": "", "9_b.sql": "", "0001_a.sql": "",
                                          "init.sql": "", "notes.txt": ""})
    assert migration_names(folder) == ["0001_a.sql", "9_b.sql", "10_c.sql", "init.sql"]
    with pytest.raises(D1MigrationError, match="No migrations present at"):
        migration_names(tmp_path / "missing")


async def test_migrations_apply_in_order_once_and_are_recorded(tmp_path: Path, path: Path) -> None:
    folder = _migrations(tmp_path / "migrations", {
        "0001_people.sql": "-- people\nCREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);",
        "0002_seed.sql": "INSERT INTO people (name) VALUES ('ada');\n"
                         "INSERT INTO people (name) VALUES ('it''s; fine');",
        "0010_trigger.sql": "CREATE TABLE log (msg TEXT);\n"
                            "CREATE TRIGGER people_log AFTER INSERT ON people BEGIN\n"
                            "  INSERT INTO log VALUES (NEW.name);\nEND;",
    })
    assert list_unapplied(path, folder) == ["0001_people.sql", "0002_seed.sql", "0010_trigger.sql"]
    seen: list[str] = []
    assert apply_migrations(path, folder, on_applied=seen.append) == [
        "0001_people.sql", "0002_seed.sql", "0010_trigger.sql"]
    assert seen == ["0001_people.sql", "0002_seed.sql", "0010_trigger.sql"]
    assert apply_migrations(path, folder) == []
    assert list_unapplied(path, folder) == []
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({MIGRATIONS_TABLE})")]
        recorded = conn.execute(f"SELECT id, name, applied_at FROM {MIGRATIONS_TABLE}").fetchall()
        names = conn.execute("SELECT name FROM people ORDER BY id").fetchall()
    conn.close()
    assert columns == ["id", "name", "applied_at"]
    assert [r[:2] for r in recorded] == [(1, "0001_people.sql"), (2, "0002_seed.sql"),
                                         (3, "0010_trigger.sql")]
    assert all(r[2] for r in recorded)
    assert names == [("ada",), ("it's; fine",)]
    _migrations(folder, {"0011_more.sql": "INSERT INTO people (name) VALUES ('bob');"})
    assert apply_migrations(path, folder) == ["0011_more.sql"]
    with D1Database(path) as db:
        assert await db.prepare("SELECT msg FROM log").raw() == [["bob"]]


async def test_a_failing_migration_keeps_earlier_ones_and_is_not_recorded(
        tmp_path: Path, path: Path) -> None:
    folder = _migrations(tmp_path / "migrations", {
        "0001_a.sql": "CREATE TABLE a (x);",
        "0002_b.sql": "CREATE TABLE b (x);\nINSERT INTO nosuch VALUES (1);",
        "0003_c.sql": "CREATE TABLE c (x);",
    })
    with pytest.raises(D1MigrationError) as info:
        apply_migrations(path, folder)
    assert str(info.value) == ("Migration 0002_b.sql failed: no such table: nosuch: "
                               "SQLITE_ERROR")
    assert (info.value.migration, info.value.applied) == ("0002_b.sql", ["0001_a.sql"])
    with D1Database(path) as db:
        tables = await db.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b', 'c')"
        ).raw()
        recorded = await db.prepare(f"SELECT name FROM {MIGRATIONS_TABLE}").raw()
    assert tables == [["a"]] and recorded == [["0001_a.sql"]]
    assert list_unapplied(path, folder) == ["0002_b.sql", "0003_c.sql"]


def test_an_unreadable_migration_is_a_clear_error(tmp_path: Path, path: Path) -> None:
    folder = _migrations(tmp_path / "migrations", {"0001_a.sql": "CREATE TABLE a (x);"})
    (folder / "0002_b.sql").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(D1MigrationError, match=r"^Migration 0002_b.sql cannot be read \(") as info:
        apply_migrations(path, folder)
    assert info.value.applied == ["0001_a.sql"]


def test_script_statements_split_like_wrangler() -> None:
    dump = ("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t (x);\n"
            "INSERT INTO t VALUES ('a;b');\n-- note\nCOMMIT;\n")
    assert script_statements(dump) == ["PRAGMA foreign_keys=OFF;", "CREATE TABLE t (x);",
                                       "INSERT INTO t VALUES ('a;b');"]
    assert script_statements("SELECT 1") == ["SELECT 1"]
    assert script_statements("  -- nothing\n") == []


async def test_an_error_on_schema_of_the_same_batch_has_no_offset(db: D1Database) -> None:
    # The offset comes from compiling the statement again on a connection of its own, which
    # cannot see the batch's uncommitted CREATE TABLE (workerd would say "at offset 7").
    with pytest.raises(D1Error) as info:
        await db.batch([db.prepare("CREATE TABLE fresh (a)"), db.prepare("SELECT b FROM fresh")])
    assert str(info.value) == "D1_ERROR: no such column: b: SQLITE_ERROR"


def test_transaction_words_inside_string_literals_are_data() -> None:
    dump = ("BEGIN TRANSACTION;\nCREATE TABLE log (v);\nINSERT INTO log VALUES('COMMIT;');\n"
            "COMMIT;\n")
    assert script_statements(dump) == ["CREATE TABLE log (v);",
                                       "INSERT INTO log VALUES('COMMIT;');"]
    plain = "CREATE TABLE log (v);\nINSERT INTO log VALUES('BEGIN TRANSACTION;');\n"
    assert script_statements(plain) == ["CREATE TABLE log (v);",
                                        "INSERT INTO log VALUES('BEGIN TRANSACTION;');"]
