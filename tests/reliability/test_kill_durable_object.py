"""``kill -9`` at every commit of a workflow whose steps write a Durable Object's storage.

Issue 12: "a Durable Object's storage write and a workflow step survive kill -9
consistently". The program ``do_commit_kill.py`` runs a three-step workflow in one state
directory; each step calls ``ledger.record(i)`` on a Durable Object, one storage transaction
that bumps ``count``, writes the key ``op:<i>`` and a SQL row (and writes nothing if
``op:<i>`` is already there). The instance's file and the object's file are separate
SQLite files, as on Cloudflare.

A first run, with `durable_object.StorageHooks` tracing the commits of both files, gives the
N commit boundaries and which file each one is. Then, for every k, a fresh state is killed
with SIGKILL right after the k-th commit and right before it, the killed state is read from
a copy, and a new process reopens it and finishes the instance. Checked at every kill point:

- the object's write is whole or absent: ``count``, the ``op:`` keys and the SQL rows agree,
  and there are exactly as many writes as object commits before the kill;
- a step recorded as done in the instance's log has its object write there (the write
  commits before the step's outcome);
- after recovery the workflow completes with each step's own value, and the object holds
  each step's write exactly once.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fork_server import ForkServer

PROGRAM = Path(__file__).parent / "do_commit_kill.py"


def _load_program() -> ModuleType:
    spec = importlib.util.spec_from_file_location("do_commit_kill", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


program = _load_program()
STEPS: int = program.STEPS
FINAL_KV = {"count": STEPS, **{f"op:{i}": i for i in range(1, STEPS + 1)}}
FINAL_ROWS = [[i, i] for i in range(1, STEPS + 1)]


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    srv = ForkServer(PROGRAM)
    try:
        yield srv
    finally:
        srv.close()


def job(folder: Path, tag: str, kill: tuple[str, int] | None = None,
        trace: bool = False) -> dict[str, Any]:
    return {"state": str(folder / "state"), "report": str(folder / f"{tag}.report.json"),
            "log": str(folder / f"{tag}.log"), "kill": list(kill) if kill else None,
            "trace": str(folder / f"{tag}.trace") if trace else None}


def read_report(done: dict[str, Any]) -> dict[str, Any]:
    path = Path(done["report"])
    assert path.exists(), f"no report; the job's output:\n{Path(done['log']).read_text()}"
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def committed(state: Path, copy: Path) -> dict[str, Any]:
    """What a killed process left, read from a copy of its state (reading the original
    could checkpoint a WAL the next process must find as the killed one left it)."""
    shutil.copytree(state, copy)
    out: dict[str, Any] = {"kv": {}, "rows": [], "steps_done": []}
    objects = list((copy / "do" / program.CLASS_NAME).glob("*.sqlite"))
    assert len(objects) <= 1, objects
    if objects:
        conn = sqlite3.connect(objects[0])
        try:
            out["kv"] = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM _kv")}
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ops'").fetchone():
                out["rows"] = [list(r) for r in conn.execute("SELECT n, seq FROM ops ORDER BY n")]
        finally:
            conn.close()
    instance = copy / "instances" / program.WORKFLOW / f"{program.INSTANCE_ID}.sqlite"
    if instance.exists():
        conn = sqlite3.connect(instance)
        try:
            out["steps_done"] = [s for (s,) in conn.execute(
                "SELECT step FROM log WHERE event = 'STEP_SUCCESS' ORDER BY id")]
        finally:
            conn.close()
    return out


@pytest.fixture(scope="module")
def boundaries(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Which file each commit of a run without kills is on, in order (a plain
    ``sys.executable`` run)."""
    folder = tmp_path_factory.mktemp("reference")
    ref = job(folder, "reference", trace=True)
    proc = subprocess.run([sys.executable, str(PROGRAM), "run", json.dumps(ref)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    report = read_report(ref)
    assert report["status"]["status"] == "complete"
    assert report["status"]["output"] == list(range(1, STEPS + 1))
    assert report["contents"] == {"kv": FINAL_KV, "rows": FINAL_ROWS}
    trace = [json.loads(line) for line in Path(ref["trace"]).read_text().splitlines()]
    assert [t["k"] for t in trace] == list(range(1, len(trace) + 1))
    assert report["commits"] == {"before": len(trace), "after": len(trace)}
    return [t["file"] for t in trace]


def test_each_object_write_is_one_commit_between_its_steps_commits(boundaries: list[str]) -> None:
    """The reference run: one object commit per step, each after the step's attempt began
    and before its outcome (so kills fall on both sides of every write)."""
    assert boundaries.count("object") == STEPS
    objects = [k for k, kind in enumerate(boundaries) if kind == "object"]
    for k in objects:
        assert boundaries[k - 1] == "instance" and boundaries[k + 1] == "instance"
    print(f"{len(boundaries)} commits: {boundaries}")


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_kill_at_any_commit_leaves_whole_writes_and_recovers(
    when: str, boundaries: list[str], server: ForkServer, tmp_path: Path,
) -> None:
    problems: list[str] = []
    for k in range(1, len(boundaries) + 1):
        folder = tmp_path / f"{when}-{k:02d}"
        folder.mkdir()
        killed = job(folder, "killed", kill=(when, k))
        ended = server.run(killed)
        if ended != {"signal": signal.SIGKILL, "exit": None}:
            problems.append(f"{when} {k}: not killed: {ended}\n{Path(killed['log']).read_text()}")
            continue
        left = committed(folder / "state", folder / "killed-state")
        durable = k if when == "after" else k - 1
        writes = boundaries[:durable].count("object")
        expected_kv = {"count": writes, **{f"op:{i}": i for i in range(1, writes + 1)}} if (
            writes) else {}
        # whole or absent: exactly the writes committed before the kill, each complete
        if left["kv"] != expected_kv or left["rows"] != [[i, i] for i in range(1, writes + 1)]:
            problems.append(f"{when} {k}: the object holds {left['kv']} / {left['rows']}, "
                            f"expected {writes} whole writes")
        # a step recorded as done has its object write
        for label in left["steps_done"]:
            n = int(label.split("-")[0][1:])
            if f"op:{n}" not in left["kv"]:
                problems.append(f"{when} {k}: step {label} is done but op:{n} is not there")

        recovered = job(folder, "recovered")
        ended = server.run(recovered)
        if ended != {"signal": None, "exit": 0}:
            problems.append(f"{when} {k}: recovery failed: {ended}\n"
                            f"{Path(recovered['log']).read_text()}")
            continue
        report = read_report(recovered)
        status = report["status"]
        if status["status"] != "complete" or status["output"] != list(range(1, STEPS + 1)):
            problems.append(f"{when} {k}: recovered to {status}")
        if report["contents"] != {"kv": FINAL_KV, "rows": FINAL_ROWS}:
            problems.append(f"{when} {k}: the object ends as {report['contents']}")
    assert not problems, "\n".join(problems)
