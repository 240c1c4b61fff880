"""``workflows-emulator d1 execute | migrations list | migrations apply`` through `main`, on a
temp project with a ``[[d1_databases]]`` entry and a real state directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from worker_projects import write_worker_project
from workflows_emulator.bindings.d1 import D1Database
from workflows_emulator.cli.commands import main

ENTRY = """
from workers import WorkflowEntrypoint


class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return None
"""
D1_TABLE = """
[[d1_databases]]
binding = "DB"
database_name = "shop"
database_id = "0f3e-shop"
migrations_dir = "schema"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    config = write_worker_project(tmp_path / "project", ENTRY)
    config.write_text(config.read_text() + D1_TABLE)
    return config


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def d1(capsys: pytest.CaptureFixture[str], project: Path, state: Path,
       *args: str) -> tuple[int, str, str]:
    """Run ``workflows-emulator d1 ARGS -c project --persist-to state``."""
    code = main(["d1", *args, "-c", str(project), "--persist-to", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def test_execute_json_prints_wranglers_shape(capsys: pytest.CaptureFixture[str], project: Path,
                                             state: Path) -> None:
    code, out, _ = d1(capsys, project, state, "execute", "DB", "--json", "--command",
                      "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB); "
                      "INSERT INTO t (name, data) VALUES ('ada', x'0102'); SELECT * FROM t")
    assert code == 0
    answer = json.loads(out)
    assert [set(r) for r in answer] == [{"results", "success", "meta"}] * 3
    assert [r["success"] for r in answer] == [True, True, True]
    assert all(set(r["meta"]) == {"duration"} for r in answer)
    assert answer[2]["results"] == [{"id": 1, "name": "ada", "data": "[1, 2]"}]
    assert (state / "d1" / "0f3e-shop.sqlite").is_file()  # <state>/d1/<database_id>.sqlite


def test_execute_writes_what_the_binding_reads_and_back(
        capsys: pytest.CaptureFixture[str], project: Path, state: Path) -> None:
    # not an async test: the CLI runs its own event loop, as from a shell
    with D1Database(state / "d1" / "0f3e-shop.sqlite") as db:
        asyncio.run(db.exec("CREATE TABLE kv (k TEXT, v TEXT)"))
        asyncio.run(db.prepare("INSERT INTO kv VALUES (?, ?)").bind("from", "binding").run())
        # the CLI works on the same file while the binding holds it open
        for name in ("DB", "shop", "0f3e-shop"):
            code, out, _ = d1(capsys, project, state, "execute", name, "--local", "--json",
                              "--command", f"INSERT INTO kv VALUES ('from', '{name}')")
            assert code == 0, out
        rows = asyncio.run(db.prepare("SELECT v FROM kv ORDER BY rowid").raw())
    assert rows == [["binding"], ["DB"], ["shop"], ["0f3e-shop"]]


def test_execute_prints_a_table_without_json(capsys: pytest.CaptureFixture[str], project: Path,
                                             state: Path) -> None:
    code, out, _ = d1(capsys, project, state, "execute", "DB", "--command",
                      "SELECT 1 AS one, 'two' AS two, NULL AS three")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("🌀 Executing on local database DB (0f3e-shop) from ")
    assert lines[1] == "🚣 1 command executed successfully."
    assert lines[2].split() == ["one", "two", "three"]
    assert lines[4].split() == ["1", "two", "null"]


def test_execute_a_file(capsys: pytest.CaptureFixture[str], project: Path, state: Path,
                        tmp_path: Path) -> None:
    sql = tmp_path / "seed.sql"
    sql.write_text("CREATE TABLE t (x);\n-- seed\nINSERT INTO t VALUES (1);\n"
                   "INSERT INTO t VALUES (2);\n")
    code, out, _ = d1(capsys, project, state, "execute", "shop", "--file", str(sql))
    assert code == 0 and "🚣 3 commands executed successfully." in out
    code, out, _ = d1(capsys, project, state, "execute", "shop", "--json", "--command",
                      "SELECT sum(x) AS total FROM t")
    assert json.loads(out)[0]["results"] == [{"total": 3}]


def test_a_failing_command_changes_nothing(capsys: pytest.CaptureFixture[str], project: Path,
                                           state: Path) -> None:
    d1(capsys, project, state, "execute", "DB", "--command", "CREATE TABLE t (x)")
    code, out, err = d1(capsys, project, state, "execute", "DB", "--command",
                        "INSERT INTO t VALUES (1); INSERT INTO nosuch VALUES (1)")
    assert code == 1
    assert err.strip() == "✘ [ERROR] no such table: nosuch: SQLITE_ERROR"
    code, out, _ = d1(capsys, project, state, "execute", "DB", "--json", "--command",
                      "SELECT count(*) AS n FROM t")
    assert json.loads(out)[0]["results"] == [{"n": 0}]
    code, out, err = d1(capsys, project, state, "execute", "DB", "--json", "--command",
                        "SELECT * FROM nosuch")
    assert code == 1 and err == ""
    assert json.loads(out) == {"error": {"text": "no such table: nosuch: SQLITE_ERROR"}}


@pytest.mark.parametrize(("args", "message"), [
    (["execute", "NOPE", "--command", "SELECT 1"],
     "✘ [ERROR] Couldn't find a D1 DB with the name or binding 'NOPE' in your wrangler.toml "
     "file (its D1 bindings: DB)"),
    (["execute", "DB", "--remote", "--command", "SELECT 1"],
     "✘ [ERROR] --remote would run against Cloudflare's D1, which the emulator does not reach; "
     "drop --remote to use the local database in --persist-to"),
    (["execute", "DB", "--command", "SELECT 1", "--file", "x.sql"],
     "✘ [ERROR] Error: can't provide both --command and --file."),
    (["execute", "DB"],
     '✘ [ERROR] Error: give the SQL to run with --command "SQL" or --file path.sql'),
    (["migrations", "list", "DB"], "✘ [ERROR] No migrations present at "),
])
def test_bad_invocations_say_what_to_do(capsys: pytest.CaptureFixture[str], project: Path,
                                        state: Path, args: list[str], message: str) -> None:
    code, _, err = d1(capsys, project, state, *args)
    assert code == 1
    assert err.startswith(message)


def test_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str], project: Path,
                                         state: Path, tmp_path: Path) -> None:
    code, _, err = d1(capsys, project, state, "execute", "DB", "--file",
                      str(tmp_path / "none.sql"))
    assert code == 1 and err.startswith("✘ [ERROR] cannot read --file ")


def test_migrations_list_and_apply(capsys: pytest.CaptureFixture[str], project: Path,
                                   state: Path) -> None:
    schema = project.parent / "schema"
    schema.mkdir()
    (schema / "0001_init.sql").write_text("CREATE TABLE items (id INTEGER PRIMARY KEY, n TEXT);")
    (schema / "0002_seed.sql").write_text("INSERT INTO items (n) VALUES ('a');")
    code, out, _ = d1(capsys, project, state, "migrations", "list", "DB")
    assert code == 0
    assert out.splitlines()[0] == "Migrations to be applied:"
    assert "0001_init.sql" in out and "0002_seed.sql" in out
    code, out, _ = d1(capsys, project, state, "migrations", "apply", "shop", "--local")
    assert code == 0
    assert out.splitlines()[-2:] == ["✅ 0001_init.sql", "✅ 0002_seed.sql"]
    for sub in ("list", "apply"):
        code, out, _ = d1(capsys, project, state, "migrations", sub, "DB")
        assert (code, out.strip()) == (0, "✅ No migrations to apply!")
    code, out, _ = d1(capsys, project, state, "execute", "DB", "--json", "--command",
                      "SELECT name FROM d1_migrations ORDER BY id")
    assert json.loads(out)[0]["results"] == [{"name": "0001_init.sql"},
                                             {"name": "0002_seed.sql"}]


def test_a_failing_migration_stops_the_run(capsys: pytest.CaptureFixture[str], project: Path,
                                           state: Path) -> None:
    schema = project.parent / "schema"
    schema.mkdir()
    (schema / "0001_ok.sql").write_text("CREATE TABLE a (x);")
    (schema / "0002_bad.sql").write_text("CREATE TABLE b (x);\nINSERT INTO nosuch VALUES (1);")
    (schema / "0003_later.sql").write_text("CREATE TABLE c (x);")
    code, out, err = d1(capsys, project, state, "migrations", "apply", "DB")
    assert code == 1
    assert out.splitlines()[-2:] == ["✅ 0001_ok.sql", "❌ 0002_bad.sql"]
    assert err.strip() == ("✘ [ERROR] Migration 0002_bad.sql failed: no such table: nosuch: "
                           "SQLITE_ERROR")
    code, out, _ = d1(capsys, project, state, "migrations", "list", "DB")
    assert "0002_bad.sql" in out and "0003_later.sql" in out and "0001_ok.sql" not in out
