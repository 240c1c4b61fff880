"""``workflows-emulator replay``: does the current code replay the stored instances as logged?

Run it before deploying a change: each instance of each workflow of the project is replayed
with the new code on a copy of the state directory (the original is only read, and may be
in use), running nothing new and writing nothing; an instance whose log the code no longer
matches (a step renamed, reordered or removed, or its config changed) is reported with both
step sequences, and the command exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from ..instance_index import INDEX_NAME
from ..project import load_project, open_runtime_sync
from .client import CliError


def add_replay_parser(top: Any, default_state: str) -> None:
    """Register ``replay``."""
    p = top.add_parser("replay", help="check the current code against the stored instances "
                       "(renamed, reordered, removed steps or changed configs)")
    p.add_argument("state_dir", nargs="?", default=default_state,
                   help=f"the state directory (default {default_state})")
    p.add_argument("-c", "--config", help="the project's wrangler.toml / wrangler.jsonc")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


def run_replay(args: argparse.Namespace) -> int:
    """Replay every stored instance; print what diverges; exit 1 if anything does."""
    state = Path(args.state_dir)
    if not (state / "instances").is_dir() or not any((state / "instances").rglob("*.sqlite")):
        raise CliError(f"{state} holds no instances (is it the state directory, as passed to "
                       "--persist-to?)")
    project = load_project(args.config)
    with tempfile.TemporaryDirectory(prefix="workflows-replay-") as scratch:
        copy = Path(scratch) / "state"
        _snapshot(state, copy)
        results = _replay_all(project, copy)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            mark = "✔" if r["ok"] else "✘"
            print(f"{mark} {r['workflow']}/{r['id']}: "
                  + ("replays as logged" if r["ok"] else r["problem"]))
        bad = sum(not r["ok"] for r in results)
        print(f"{len(results)} instance(s) checked, {bad} not replayed as logged")
    return 1 if not results or any(not r["ok"] for r in results) else 0


def _snapshot(state: Path, copy: Path) -> None:
    """A consistent copy of every state file (SQLite's backup: safe while another writes)."""
    for src in [state / INDEX_NAME, *(state / "instances").rglob("*.sqlite")]:
        if not src.is_file():
            continue
        dst = copy / src.relative_to(state)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(f"{src.absolute().as_uri()}?mode=ro", uri=True) as source, \
                sqlite3.connect(dst) as target:
            source.backup(target)
        source.close()
        target.close()


def _replay_all(project: Any, copy: Path) -> list[dict[str, Any]]:
    stored = sorted(p.name for p in (copy / "instances").iterdir() if p.is_dir())
    with open_runtime_sync(project, copy, clock="virtual", determinism="error") as rt:
        async def replay() -> list[dict[str, Any]]:
            results = [
                {"workflow": name, "id": path.stem, "status": None, "ok": False,
                 "problem": f'the project ({project.config_path}) has no workflow "{name}" '
                            f"(its workflows: {', '.join(rt.workflows) or 'none'}); pass the "
                            "--config of the project that made these instances"}
                for name in stored if name not in rt.workflows
                for path in sorted((copy / "instances" / name).glob("*.sqlite"))]
            for name, workflow in rt.workflows.items():
                for row in await workflow.list():
                    inst = await workflow.get(row["id"])
                    found = await (await inst._live_engine()).check_replay()
                    results.append({"workflow": name, "id": row["id"], "status": row["status"],
                                    "ok": found is None,
                                    "problem": None if found is None else str(found)})
            await rt.emulator.close()
            return results

        return asyncio.run(replay())
