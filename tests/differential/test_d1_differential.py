"""Differential test of the D1 binding: one list of operations runs through a JS Worker on
wrangler's local runtime (miniflare, driven by ``d1_driver.mjs`` in one Node 22 process) and
through `workflows_emulator.bindings.d1.D1Database`; the normalised answers must be equal.

Compared exactly, as JSON text (so ``2`` and ``2.0`` differ, and so does the order of keys),
after turning the JS answer into what a Python Worker receives (Pyodide makes a JS number an
``int`` only when it is a safe integer): result rows, ``raw()`` lists, ``first()`` values,
error messages, and the meta fields ``changes``, ``last_row_id``, ``changed_db``,
``served_by_primary`` and ``total_attempts``. Compared by key set and JSON type only: every
other meta field, and the ``duration`` of ``exec``.

Known differences, left on purpose (each normalised below, nowhere else):

- ``duration``, ``timings.sql_duration_ms`` and ``size_after`` are measurements of two
  different engines; ``served_by`` names the engine (``miniflare.db`` there).
- workerd adds `` at offset N`` to some SQLite messages (``sqlite3_error_offset``), which
  Python's ``sqlite3`` module does not expose; the emulator finds it by compiling the
  statement again on a connection of its own, which does not see the uncommitted schema of
  the same batch: there (the ``fresh`` batch below) its message has no offset. Offsets are
  dropped before comparing only for those operations (``no_offset``), or everywhere when
  this SQLite cannot report offsets at all.
- ``rows_read`` / ``rows_written`` come from workerd's patched SQLite, which counts every row
  a statement visits (scans, index entries, schema rows). Python's ``sqlite3`` cannot see
  those counters; the emulator counts rows returned / inserted / changed. They are compared
  only for the operations marked ``counts`` (point reads, full reads, plain inserts,
  updates and deletes), where both agree.

Not compared here: binding a Python object that is no JS value (a dict, a list), which the
JS driver cannot send; on Cloudflare it reaches D1 as a PyProxy and is refused.
``tests/bindings/test_d1.py`` covers those.

When Node or miniflare cannot run, the test fails (it never skips).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator.bindings.d1 import D1Database, D1Error, error_offsets_available

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "node_modules" / "node" / "bin" / "node"
DRIVER = Path(__file__).resolve().parent / "d1_driver.mjs"
EXACT_META = ("changes", "last_row_id", "changed_db", "served_by_primary", "total_attempts")
DRIVER_TIMEOUT = 90  # seconds; it takes about 3
OFFSET = re.compile(r" at offset \d+(?=: SQLITE_)")


def op(kind: str, sql: str = "", *params: Any, counts: bool = False, **extra: Any) -> dict[str, Any]:
    """One operation; ``counts`` also compares its rows_read / rows_written."""
    entry: dict[str, Any] = {"op": kind, "sql": sql, **extra}
    if params:
        entry["params"] = list(params)
    if counts:
        entry["counts"] = True
    return entry


def blob(*values: int) -> dict[str, list[int]]:
    return {"$bytes": list(values)}


OPS: list[dict[str, Any]] = [
    op("run", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)"),
    op("run", "INSERT INTO t (name, score, data) VALUES (?, ?, ?)", "a", 1.5, blob(1, 2, 3),
       counts=True),
    op("run", "INSERT INTO t (name, score) VALUES (?, ?)", "b", 2, counts=True),
    op("run", "INSERT INTO t (name, score) VALUES (?, ?)", "c", True, counts=True),
    op("all", "SELECT * FROM t", counts=True),
    op("all", "SELECT * FROM t WHERE id = ?", 2, counts=True),
    op("all", "SELECT * FROM t WHERE name = ?", "b"),
    op("run", "UPDATE t SET score = 3 WHERE id = 1", counts=True),
    op("run", "UPDATE t SET score = 4", counts=True),
    op("run", "DELETE FROM t WHERE id = 3", counts=True),
    op("run", "SELECT id FROM t ORDER BY id", counts=True),
    op("first", "SELECT * FROM t ORDER BY id"),
    op("first", "SELECT * FROM t ORDER BY id", column="name"),
    op("first", "SELECT * FROM t ORDER BY id", column="nope"),
    op("first", "SELECT * FROM t WHERE id = 99"),
    op("first", "SELECT * FROM t WHERE id = 99", column="nope"),
    op("first", "SELECT NULL AS a", column="a"),
    op("first", "INSERT INTO t (name) VALUES ('r') RETURNING id, name"),
    op("raw", "SELECT id, name FROM t ORDER BY id"),
    op("raw", "SELECT id, name FROM t ORDER BY id", columnNames=True),
    op("raw", "SELECT id, name FROM t WHERE id = 99", columnNames=True),
    op("raw", "SELECT 1 AS a, 2 AS a", columnNames=True),
    op("all", "SELECT 1 AS a, 2 AS a"),
    # values as a JS number carries them
    op("run", "CREATE TABLE w (s TEXT, n NUMERIC, i INTEGER, r REAL, b BLOB, x)"),
    op("run", "INSERT INTO w VALUES (?, ?, ?, ?, ?, ?)", 5, 5, 5, 5, 5, 5, counts=True),
    op("all", "SELECT typeof(s) ts, s, typeof(n) tn, typeof(i) ti, typeof(r) tr, typeof(b) tb, "
              "typeof(x) tx, x FROM w"),
    op("all", "SELECT ? / 2 AS half, typeof(?) AS t, ? AS n, ? AS s", 3, False, None, "é😀"),
    op("all", "SELECT 7 / 2 AS q, 2.0 AS two, 1e300 * 1e10 AS inf, 9007199254740993 AS big"),
    op("all", "SELECT ? AS b, typeof(?) AS t", blob(0, 255), blob()),
    op("all", "SELECT id FROM t ORDER BY id LIMIT ?", 2),
    op("all", "SELECT ?2 AS b, ?1 AS a", "A", "B"),
    op("all", "SELECT :x AS x, @y AS y", "X", "Y"),  # named parameters bind by position
    op("bind", "SELECT ?", blob(1, 2)),
    # errors
    op("run", "SELECT * FROM nosuch"),
    op("run", "SELEC 1"),
    op("run", "SELECT nosuchcol FROM t"),
    op("run", "  SELECT 'é', nosuchcol FROM t"),
    op("run", "SELECT 1;\n  SELECT x FROM FROM"),
    op("run", "CREATE TABLE t (a)"),
    op("batch", statements=[op("", "CREATE TABLE fresh (a)"), op("", "SELECT b FROM fresh")],
       no_offset=True),
    op("run", "INSERT INTO t (id, name) VALUES (1, 'dup')"),
    op("run", "INSERT INTO t (id) VALUES (?)", 1.5),
    op("run", "SELECT ?1, ?2", 1),
    op("run", "   "),
    op("run", "-- only a comment"),
    op("run", "/* only a comment */"),
    op("run", "SELECT 1; -- trailing comment"),
    op("run", "BEGIN TRANSACTION"),
    op("run", "SAVEPOINT a"),
    op("run", "ATTACH DATABASE 'x.db' AS x"),
    op("run", "VACUUM"),
    # constraints: D1 enforces foreign keys
    op("exec", "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
               "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES p(id), "
               "n INTEGER CHECK (n > 0));"),
    op("run", "INSERT INTO c (p, n) VALUES (5, 1)"),
    op("run", "INSERT INTO c (p, n) VALUES (NULL, 1)"),
    op("run", "INSERT INTO p (id) VALUES (1)"),
    op("run", "INSERT INTO c (p, n) VALUES (1, 0)"),
    # several statements in one prepare
    op("run", "INSERT INTO p VALUES (10); INSERT INTO p VALUES (11)"),
    op("run", "SELECT 1; SELECT ? AS v", 3),
    op("run", "SELECT ?; SELECT 1", 3),
    op("run", "SELECT 1 AS one;"),
    op("run", "SELECT 1 AS one;;"),
    # batch
    op("batch", statements=[op("", "INSERT INTO t (name) VALUES (?)", "e"),
                            op("", "SELECT count(*) AS n FROM t")]),
    op("batch", statements=[op("", "INSERT INTO t (name) VALUES (?)", "f"),
                            op("", "INSERT INTO nosuch VALUES (1)")]),
    op("batch", statements=[op("", "INSERT INTO t (name) VALUES (?)", "g"),
                            op("", "-- nothing"), op("", "SELECT name FROM t WHERE name = 'g'")]),
    op("batch", statements=[]),
    op("all", "SELECT name FROM t ORDER BY id"),
    # exec
    op("exec", "CREATE TABLE u (x);\nINSERT INTO u VALUES (1);\n\n-- a comment\n"
               "INSERT INTO u VALUES (2); INSERT INTO u VALUES (3);"),
    op("exec", "INSERT INTO u VALUES (4);\nINSERT INTO nosuch VALUES (1);"),
    op("exec", "CREATE TABLE v (\n  x INTEGER\n);"),
    op("exec", ""),
    op("all", "SELECT * FROM u"),
]


def _run_miniflare(ops: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    ops_path = folder / "ops.json"
    ops_path.write_text(json.dumps(ops))
    assert NODE.exists(), (
        f"{NODE} is missing: the differential tier needs the npm tooling (link /work/main's "
        "node_modules, or run npm install at the repository root)")
    # Its own process group: on a timeout, workerd (miniflare's child) goes down with it.
    proc = subprocess.Popen([str(NODE), str(DRIVER), str(ops_path), str(folder / "miniflare")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DRIVER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"the miniflare driver ran over {DRIVER_TIMEOUT} s") from None
    assert proc.returncode == 0, f"miniflare driver failed:\n{err[-3000:]}"
    answer: list[dict[str, Any]] = json.loads(out)["results"]
    return answer


def _param(value: Any) -> Any:
    if isinstance(value, dict) and "$bytes" in value:
        return bytes(value["$bytes"])
    return value


async def _emulate(db: D1Database, entry: dict[str, Any]) -> Any:
    def stmt(s: dict[str, Any]) -> Any:
        prepared = db.prepare(s["sql"])
        return prepared.bind(*map(_param, s["params"])) if "params" in s else prepared

    kind = entry["op"]
    if kind == "run":
        return await stmt(entry).run()
    if kind == "all":
        return await stmt(entry).all()
    if kind == "first":
        return await (stmt(entry).first(entry["column"]) if "column" in entry
                      else stmt(entry).first())
    if kind == "raw":
        return await (stmt(entry).raw(columnNames=entry["columnNames"]) if "columnNames" in entry
                      else stmt(entry).raw())
    if kind == "batch":
        return await db.batch([stmt(s) for s in entry["statements"]])
    if kind == "exec":
        return await db.exec(entry["sql"])
    if kind == "bind":
        stmt(entry)
        return "bound"
    raise AssertionError(f"unknown op {kind}")


async def _run_emulator(ops: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with D1Database(path) as db:
        for entry in ops:
            try:
                value = await _emulate(db, entry)
            except D1Error as exc:
                out.append({"error": str(exc)})
            else:
                out.append({"ok": json.loads(json.dumps(value))})  # as the JS side sends it
    return out


def _as_pyodide(value: Any) -> Any:
    """A JS answer (read from JSON) as a Python Worker gets it: Pyodide turns a JS number into
    an ``int`` only when it is a safe integer (at most 2**53 - 1), else into a ``float``."""
    if isinstance(value, dict):
        return {k: _as_pyodide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_pyodide(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return float(value)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _meta(meta: dict[str, Any], counts: bool) -> dict[str, Any]:
    exact = EXACT_META + (("rows_read", "rows_written") if counts else ())
    shown: dict[str, Any] = {}
    for key, value in meta.items():
        if key == "timings":
            shown[key] = {k: _kind(v) for k, v in value.items()}
        else:
            shown[key] = value if key in exact else _kind(value)
    return shown


def _normalise(answer: dict[str, Any], counts: bool, offsets: bool) -> Any:
    answer = json.loads(json.dumps(answer))  # a copy: the failure message shows the original
    if "error" in answer:
        return {"error": answer["error"] if offsets else OFFSET.sub("", answer["error"])}
    value = answer["ok"]
    results = value if isinstance(value, list) else [value]
    for result in results:
        if isinstance(result, dict) and "meta" in result:
            result["meta"] = _meta(result["meta"], counts)
        if isinstance(result, dict) and set(result) == {"count", "duration"}:
            result["duration"] = _kind(result["duration"])
    return {"ok": value}


async def test_d1_matches_miniflare(tmp_path: Path) -> None:
    expected = _run_miniflare(OPS, tmp_path)
    got = await _run_emulator(OPS, tmp_path / "emulator" / "db.sqlite")
    assert len(expected) == len(got) == len(OPS)
    differences = []
    for index, (entry, theirs, ours) in enumerate(zip(OPS, expected, got, strict=True)):
        counts = bool(entry.get("counts"))
        offsets = error_offsets_available() and not entry.get("no_offset")
        # compared as JSON text: 2 and 2.0 differ, and so does the order of keys
        expected_text = json.dumps(_normalise(_as_pyodide(theirs), counts, offsets))
        if expected_text != json.dumps(_normalise(ours, counts, offsets)):
            differences.append(f"#{index} {entry}\n  miniflare: {json.dumps(theirs)}\n"
                               f"  emulator:  {json.dumps(ours)}")
    assert not differences, "\n".join(differences)

