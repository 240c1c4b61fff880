"""``workflows-emulator d1 ...``: wrangler's local D1 commands on the state directory.

``d1 execute <database> --command SQL | --file PATH [--json]`` and
``d1 migrations list|apply <database>``. ``<database>`` is a binding, ``database_name`` or
``database_id`` of the project's ``[[d1_databases]]``; the file is
``<persist-to>/d1/<database_id>.sqlite``, shared safely with a running dev server (SQLite's
own locking). There is no remote database: ``--remote`` is refused, ``--local`` changes
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, TypeAlias

from ..bindings.config import D1Config
from ..bindings.d1 import (
    D1Database,
    D1Error,
    D1MigrationError,
    apply_migrations,
    list_unapplied,
    script_statements,
)
from ..bindings.layout import d1_path
from ..project import load_project
from .client import CliError
from .render import render_table

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
NO_MIGRATIONS = "✅ No migrations to apply!"


def add_d1_parser(top: Subparsers, default_state: str) -> None:
    """Add the ``d1`` command group to the CLI's top-level subparsers."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("database", help="the D1 binding, database_name or database_id")
    shared.add_argument("-c", "--config", help="the project's wrangler.toml / wrangler.jsonc "
                        "(default: the one in the current folder)")
    shared.add_argument("--persist-to", default=default_state,
                        help=f"the state directory (default {default_state})")
    shared.add_argument("--local", action="store_true",
                        help="accepted for wrangler compatibility: the database is always local")
    shared.add_argument("--remote", action="store_true", help=argparse.SUPPRESS)
    d1 = top.add_parser("d1", help="query and migrate the project's D1 databases (as wrangler)")
    sub = d1.add_subparsers(dest="d1_command", required=True, metavar="SUBCOMMAND")
    ex = sub.add_parser("execute", parents=[shared], help="run SQL against a D1 database")
    # not dest "command": that names the top-level command (`d1`)
    ex.add_argument("--command", dest="sql_command", metavar="SQL", help="the SQL to run")
    ex.add_argument("--file", help="a .sql file to run")
    ex.add_argument("--json", action="store_true", help="print the results as JSON")
    ex.add_argument("-y", "--yes", action="store_true", help="accepted; nothing is asked")
    mig = sub.add_parser("migrations", help="list or apply the migrations_dir of a database")
    msub = mig.add_subparsers(dest="migrations_command", required=True, metavar="SUBCOMMAND")
    msub.add_parser("list", parents=[shared], help="list the migrations not yet applied")
    msub.add_parser("apply", parents=[shared], help="apply the migrations not yet applied")


def run_d1(args: argparse.Namespace) -> int:
    """Run one ``d1`` command; returns the exit code.

    Raises:
        CliError: an unknown database, a bad option, or SQL that failed.
    """
    if args.remote:
        raise CliError("--remote would run against Cloudflare's D1, which the emulator does not "
                       "reach; drop --remote to use the local database in --persist-to")
    cfg = _database(args)
    path = d1_path(Path(args.persist_to), cfg)
    if args.d1_command == "execute":
        return _execute(args, cfg, path)
    if args.migrations_command == "list":
        return _list_migrations(cfg, path)
    return _apply_migrations(cfg, path)


def _database(args: argparse.Namespace) -> D1Config:
    project = load_project(args.config)
    cfg = project.bindings.find_d1(args.database)
    if cfg is None:
        known = ", ".join(d.binding for d in project.bindings.d1_databases) or "none"
        raise CliError(f"Couldn't find a D1 DB with the name or binding '{args.database}' in "
                       f"your {project.config_path.name} file (its D1 bindings: {known})")
    return cfg


# -- execute ---------------------------------------------------------------------------------------


def _execute(args: argparse.Namespace, cfg: D1Config, path: Path) -> int:
    if args.sql_command is not None and args.file is not None:
        raise CliError("Error: can't provide both --command and --file.")
    if args.sql_command is None and args.file is None:
        raise CliError("Error: give the SQL to run with --command \"SQL\" or --file path.sql")
    sql = args.sql_command if args.sql_command is not None else _read_sql(Path(args.file))
    if not args.json:
        print(f"🌀 Executing on local database {args.database} ({cfg.database_id}) from "
              f"{path}:")
    try:
        results = asyncio.run(_batch(path, sql))
    except D1Error as exc:
        message = str(exc).removeprefix("D1_ERROR: ")
        if args.json:  # as wrangler: the error as JSON on stdout, exit code 1
            print(json.dumps({"error": {"text": message}}, indent=2))
            return 1
        raise CliError(message) from None
    shown = [_shown_result(r) for r in results]
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    print(f"🚣 {len(shown)} command{'' if len(shown) == 1 else 's'} executed successfully.")
    for result in shown:
        if result["results"]:
            columns = list(result["results"][0])
            print(render_table(columns, [[_cell(row.get(c)) for c in columns]
                                         for row in result["results"]]))
    return 0


def _read_sql(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read --file {file}: {exc.strerror}; check the path") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"--file {file} is not UTF-8 text: {exc}") from exc


async def _batch(path: Path, sql: str) -> list[Any]:
    with D1Database(path) as db:
        return await db.batch([db.prepare(s) for s in script_statements(sql)])


def _shown_result(result: dict[str, Any]) -> dict[str, Any]:
    """One statement's answer as ``wrangler d1 execute --json`` prints it."""
    rows = [{k: (f"[{', '.join(map(str, v))}]" if isinstance(v, list) else v)
             for k, v in row.items()} for row in result["results"]]
    return {"results": rows, "success": result["success"],
            "meta": {"duration": result["meta"]["duration"]}}


def _cell(value: Any) -> str:
    return "null" if value is None else str(value)


# -- migrations ------------------------------------------------------------------------------------


def _show_unapplied(cfg: D1Config, path: Path) -> list[str]:
    """Print the migrations not applied yet (as wrangler does); return their names."""
    try:
        todo = list_unapplied(path, cfg.migrations_dir)
    except D1MigrationError as exc:
        raise CliError(str(exc)) from None
    if not todo:
        print(NO_MIGRATIONS)
        return todo
    print("Migrations to be applied:")
    print(render_table(["Name"], [[name] for name in todo]))
    return todo


def _list_migrations(cfg: D1Config, path: Path) -> int:
    _show_unapplied(cfg, path)
    return 0


def _apply_migrations(cfg: D1Config, path: Path) -> int:
    if not _show_unapplied(cfg, path):
        return 0
    try:
        apply_migrations(path, cfg.migrations_dir, on_applied=lambda name: print(f"✅ {name}"))
    except D1MigrationError as exc:
        if exc.migration is not None:
            print(f"❌ {exc.migration}")
        raise CliError(str(exc)) from None
    return 0
