"""``kill -9`` at every commit boundary of a 20-step saga, forward phase and rollback phase alike.

Issue 10: "expect 0 lost instances, 0 re-run completed steps or handlers, and 100 % of
rollbacks completed". The program ``programs/commit_kill_saga.py`` runs a saga of 20 steps,
each with a rollback handler, whose twentieth step fails for good, so the rollback phase
runs all 20 handlers (the failed step's own first, with ``output=None``). Every callback
and handler call appends a line to a side-effect journal (fsynced) before it returns.

The boundaries are not guessed: a first real run, with `durable_object.StorageHooks`
tracing every commit of the instance's SQLite file, gives N commits and, at each one, a
digest of the file's committed content as another connection sees it. Then, for every
k in 1..N, a fresh state is killed with SIGKILL right after the k-th commit and, again,
right before it (the k-th transaction must then be lost cleanly); a new process reopens
the state, registers the workflow and waits, and the journal and the log are checked.

The ~350 processes are forked from a server process that has imported the emulator once
(each a real process, with its own SQLite connections, killed for real); a plain
``sys.executable`` run of the same program is checked to write the same commit trace.
"""

from __future__ import annotations

import collections
import concurrent.futures
import importlib.util
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fork_server import ForkServer

pytestmark = pytest.mark.slow

PROGRAM = Path(__file__).parent / "programs" / "commit_kill_saga.py"


def _load_program() -> ModuleType:
    spec = importlib.util.spec_from_file_location("commit_kill_saga", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


saga = _load_program()
STEPS: int = saga.STEPS
NAMES = [saga.step_name(i) for i in range(1, STEPS + 1)]
FAILING = NAMES[-1]
FINAL_STATUS = {
    "status": "errored", "error": {"name": "NonRetryableError", "message": f"{FAILING} failed"},
    "output": None, "rollback": {"outcome": "complete", "error": None},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    return env


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    srv = ForkServer(PROGRAM, env=_env())
    try:
        yield srv
    finally:
        srv.close()


class Case:
    """One state directory, its journal and the files of the jobs run on it."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.state = self.dir / "state"
        self.journal = self.dir / "journal.jsonl"
        self._jobs = 0

    def job(self, action: str, kill: tuple[str, int] | None = None,
            trace: bool = False) -> dict[str, Any]:
        self._jobs += 1
        tag = f"{self._jobs}-{action}"
        return {"state": str(self.state), "journal": str(self.journal), "action": action,
                "kill": list(kill) if kill else None,
                "trace": str(self.dir / f"{tag}.trace") if trace else None,
                "report": str(self.dir / f"{tag}.report.json"),
                "log": str(self.dir / f"{tag}.log")}

    def effects(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text().splitlines()]

    def instance_file(self, state: Path | None = None) -> Path:
        return (state or self.state) / "instances" / saga.WORKFLOW / f"{saga.INSTANCE_ID}.sqlite"

    def committed(self, generation: int = 0) -> tuple[dict[str, Any], list[tuple[str, str]], dict[str, str]]:
        """What a killed process left: the instance file's content, its log's ``(event,
        step)`` pairs, and the instance's status in the file and in the index. Read from a
        copy (reading the original could checkpoint its WAL, which the next process must
        find as the killed one left it)."""
        copy = self.dir / f"killed-state-{generation}"
        shutil.copytree(self.state, copy)
        statuses = {"file": "none", "index": "none"}
        index = sqlite3.connect(copy / "index.sqlite")
        try:
            row = index.execute("SELECT status FROM instances WHERE id = ?", (saga.INSTANCE_ID,)).fetchone()
            statuses["index"] = row[0] if row else "none"
        finally:
            index.close()
        path = self.instance_file(copy)
        if not path.exists():
            return {"max_id": 0, "events": [], "digest": None}, [], statuses
        conn = sqlite3.connect(path)
        try:
            snap = saga.snapshot(conn)
            rows = conn.execute("SELECT event, step FROM log ORDER BY id").fetchall()
            meta = conn.execute("SELECT value FROM _kv WHERE key = 'meta'").fetchone()
        finally:
            conn.close()
        statuses["file"] = json.loads(meta[0])["status"] if meta else "none"
        return snap, [(event, step) for event, step in rows], statuses


def read_report(job: dict[str, Any]) -> dict[str, Any]:
    path = Path(job["report"])
    assert path.exists(), f"no report; the job's output:\n{Path(job['log']).read_text()}"
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def read_trace(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(job["trace"]).read_text().splitlines()]


# -- phase 1: the boundaries, from a real run ---------------------------------------------------


class Boundaries:
    """The commits of the instance file in a run without kills, as traced."""

    def __init__(self, trace: list[dict[str, Any]], instance_file: str) -> None:
        mine = [t for t in trace if t["file"] == instance_file]
        self.before = [t for t in mine if t["hook"] == "before"]
        self.after = [t for t in mine if t["hook"] == "after"]
        self.sequence = [(t["hook"], t["k"]) for t in mine]
        self.n = len(self.after)
        self.other_files = collections.Counter(t["file"] for t in trace if t["file"] != instance_file)

    def digest_after(self, k: int) -> str:
        """The committed content once commit ``k`` is durable (k=0: before any)."""
        return str(self.after[k - 1]["digest"] if k else self.before[0]["digest"])

    def first_boundary(self, event: str, step: str | None) -> int:
        """The commit at which the log first holds ``event`` (of ``step``)."""
        for k, after in enumerate(self.after, start=1):
            if event in after["events"] and (step is None or any(
                    e == event and s == step for e, s in after["steps"])):
                return k
        raise AssertionError(f"{event} {step} is never committed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run without kills, as a plain ``sys.executable`` process, with every commit traced."""
    case = Case(tmp_path_factory.mktemp("reference"), "exec")
    job = case.job("create", trace=True)
    proc = subprocess.run([sys.executable, str(PROGRAM), "run", json.dumps(job)],
                          capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert proc.returncode == 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    report = read_report(job)
    trace = read_trace(job)
    conn = sqlite3.connect(case.instance_file())
    try:
        final = saga.snapshot(conn)
        steps_at = conn.execute("SELECT id, event, step FROM log ORDER BY id").fetchall()
    finally:
        conn.close()
    # Which (event, step) pairs each traced boundary holds, from the final log's ids.
    for line in trace:
        if "max_id" in line:
            line["steps"] = [(e, s) for i, e, s in steps_at if i <= line["max_id"]]
    return {"report": report, "trace": trace, "final": final,
            "boundaries": Boundaries(trace, case.instance_file().name)}


def test_the_boundaries_are_every_commit_of_a_real_run(
    reference: dict[str, Any], server: ForkServer, tmp_path: Path,
) -> None:
    report, bounds = reference["report"], reference["boundaries"]
    assert report["status"] == FINAL_STATUS
    n = bounds.n
    assert report["commits"] == {"before": n, "after": n}
    # hooks come in pairs, in order: before 1, after 1, before 2, ...
    assert bounds.sequence == [(h, k) for k in range(1, n + 1) for h in ("before", "after")]

    # Complete: between two boundaries nothing reaches the file (the content another
    # connection sees just before commit k is the one it saw just after k-1); each commit
    # changes it; and the last boundary holds the whole final log.
    before_first = bounds.before[0]
    assert before_first["events"] == [] and before_first["max_id"] == 0
    for k in range(1, n + 1):
        assert bounds.before[k - 1]["digest"] == bounds.digest_after(k - 1), f"commit {k}"
        assert bounds.after[k - 1]["digest"] != bounds.before[k - 1]["digest"], f"commit {k}"
    assert bounds.after[-1]["digest"] == reference["final"]["digest"]
    assert bounds.after[-1]["events"] == [e["event"] for e in report["events"]]
    ids_by_boundary = [a["max_id"] for a in bounds.after]
    assert ids_by_boundary == sorted(ids_by_boundary)
    assert ids_by_boundary[-1] == len(report["events"])

    # Each attempt's start is durable before its callback runs, and each step's and each
    # handler's outcome no later than the next one's start: in the commit that starts it at
    # the latest (`InstanceStore.deferred`), so before the next callback runs.
    labels = [f"{name}-1" for name in NAMES]
    for label in labels:
        assert bounds.first_boundary("ATTEMPT_START", label) < bounds.first_boundary(
            "STEP_SUCCESS" if label != labels[-1] else "STEP_FAILURE", label)
        assert bounds.first_boundary("ROLLBACK_ATTEMPT_START", label) < bounds.first_boundary(
            "ROLLBACK_STEP_SUCCESS", label)
    for earlier, later in itertools.pairwise(labels):
        assert bounds.first_boundary("STEP_SUCCESS", earlier) <= bounds.first_boundary(
            "ATTEMPT_START", later)
    assert bounds.first_boundary("STEP_FAILURE", labels[-1]) < bounds.first_boundary(
        "ROLLBACK_STEP_START", labels[-1])
    rollback_order = labels[::-1]
    for earlier, later in itertools.pairwise(rollback_order):
        assert bounds.first_boundary("ROLLBACK_STEP_SUCCESS", earlier) <= bounds.first_boundary(
            "ROLLBACK_ATTEMPT_START", later)
    assert n >= 2 * STEPS  # hence a commit per step and per handler, at least
    print(f"N = {n} commits on the instance file; hook calls on other files: "
          f"{dict(bounds.other_files)}")

    # A child of the fork server commits exactly as a fresh interpreter does.
    case = Case(tmp_path, "forked")
    job = case.job("create", trace=True)
    assert server.run(job) == {"signal": None, "exit": 0}
    assert [{k: v for k, v in t.items() if k != "steps"} for t in reference["trace"]] == read_trace(job)


# -- phase 2: a kill at each boundary -------------------------------------------------------------

# What each check of a kill point is about (a test below asserts each over every kill point).
KILLED, LOST, RERUN, ROLLED_BACK, ONE_PHASE, RESUMED = (
    "killed at the boundary", "lost", "re-run", "rolled back", "one rollback phase", "resumed")
# States a kill left, as observed in the killed state's files (where two emulator bugs showed).
COMPLETE_NOT_FINAL = "ROLLBACK_COMPLETE committed, WORKFLOW_FAILURE not"
INDEX_AHEAD = "index.sqlite says terminal, the instance file does not"
TERMINAL = {"complete", "errored", "terminated"}


class KillPoint:
    """Kills at ``kills[0]`` of a first run, then at ``kills[1:]`` of each recovery's own
    commits, then recovers for good; collects what went wrong."""

    def __init__(self, kills: list[tuple[str, int]]) -> None:
        self.kills = kills
        self.name = "+".join(f"{when}-{k:03d}" for when, k in kills)
        self.problems: list[tuple[str, str]] = []
        self.states: set[str] = set()
        self.killed = 0
        """How many of ``kills`` happened (a recovery may have had fewer commits to make)."""

    def run(self, case: Case, bounds: Boundaries, server: ForkServer) -> KillPoint:
        # (pids that had run, steps and handlers finished) at each kill
        finished_at: list[tuple[set[int], dict[str, set[str]]]] = []
        for generation, (when, k) in enumerate(self.kills):
            job = case.job("create" if generation == 0 else "recover", kill=(when, k))
            ended = server.run(job)
            if generation and ended == {"signal": None, "exit": 0} and (
                    read_report(job)["commits"]["after"] < k):
                break  # the recovery had fewer commits to make: nothing to kill it at
            if ended != {"signal": signal.SIGKILL, "exit": None}:
                self.problems.append((KILLED, f"generation {generation} was not killed: {ended}"))
                return self
            self.killed += 1
            snap, log, statuses = case.committed(generation)
            if generation == 0 and snap["digest"] != bounds.digest_after(k if when == "after" else k - 1):
                self.problems.append((KILLED, f"the state left is not the one committed there: "
                                              f"{snap['events']}"))
            events = {e for e, _ in log}
            if "ROLLBACK_COMPLETE" in events and "WORKFLOW_FAILURE" not in events:
                self.states.add(COMPLETE_NOT_FINAL)
            if statuses["index"] in TERMINAL and statuses["file"] not in TERMINAL:
                self.states.add(INDEX_AHEAD)
            finished_at.append(({e["pid"] for e in case.effects()}, {
                "step": {s for e, s in log if e in ("STEP_SUCCESS", "STEP_FAILURE")},
                "rollback": {s for e, s in log if e in ("ROLLBACK_STEP_SUCCESS", "ROLLBACK_STEP_FAILURE")}}))

        job = case.job("recover")
        ended = server.run(job)
        if ended != {"signal": None, "exit": 0}:
            self.problems.append((ROLLED_BACK, f"recovery failed: {ended}\n{Path(job['log']).read_text()}"))
            return self
        report = read_report(job)
        # Lost: create() had returned (or steps had run), yet the instance is not there. If
        # the kill came before create() returned, the client retries it with the same id.
        if not report["found"] and (report["acknowledged"] or any(
                f"{NAMES[0]}-1" in done["step"] for _, done in finished_at)):
            self.problems.append((LOST, "the instance is gone"))
            return self
        self._check_log(report)
        self._check_effects(case.effects(), finished_at)
        return self

    def _check_log(self, report: dict[str, Any]) -> None:
        events = report["events"]
        names = [e["event"] for e in events]
        complete = [e for e in events if e["event"] == "ROLLBACK_COMPLETE"]
        if report["status"] != FINAL_STATUS:
            self.problems.append((ROLLED_BACK, f"final status {report['status']}"))
        if not complete or complete[-1]["data"] != {"totalSteps": STEPS, "completedSteps": STEPS} or (
                "ROLLBACK_FAILED" in names):
            self.problems.append((ROLLED_BACK, f"the log records no complete rollback: {names[-4:]}"))
        if (names.count("ROLLBACK_START"), len(complete), names.count("WORKFLOW_FAILURE")) != (1, 1, 1) or (
                names[-1] != "WORKFLOW_FAILURE"):
            self.problems.append((ONE_PHASE, f"the log ends {names[-4:]}"))
        if report["found"] and report["status_after_settle"]["status"] != "errored":
            self.problems.append((RESUMED, f"{report['status_after_settle']['status']} after registering "
                                           f"the workflow and settle(); list() said "
                                           f"{report['listed_after_settle'][0]['status']}"))
        if [(i["id"], i["status"]) for i in report["listed"]] != [(saga.INSTANCE_ID, "errored")]:
            self.problems.append((RESUMED, f"list() shows {report['listed']} once it ended"))

    def _check_effects(self, effects: list[dict[str, Any]],
                       finished_at: list[tuple[set[int], dict[str, set[str]]]]) -> None:
        effects = [e for e in effects if e["kind"] in ("step", "rollback")]
        runs = collections.Counter((e["kind"], e["name"]) for e in effects)
        for name in NAMES:
            for kind in ("step", "rollback"):
                key = (kind, name)
                if runs[key] == 0:
                    self.problems.append((ROLLED_BACK if kind == "rollback" else RERUN,
                                          f"{kind} {name} never ran"))
                elif runs[key] > 2:  # once, and once more if a kill cut it off
                    self.problems.append((RERUN, f"{kind} {name} ran {runs[key]} times"))
                for pids, finished in finished_at:
                    later = sum(1 for e in effects if (e["kind"], e["name"]) == key and e["pid"] not in pids)
                    if f"{name}-1" in finished[kind] and later:
                        self.problems.append((RERUN, f"{kind} {name} had finished before a kill "
                                                     f"and ran {later} more times"))
        # Every handler ran, newest-started first (a cut-off one twice in a row), with what
        # it should see: its step's stored output (None for the failed one), the error.
        order = [e["name"] for e in effects if e["kind"] == "rollback"]
        if [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n] != NAMES[::-1]:
            self.problems.append((ROLLED_BACK, f"handlers ran in the order {order}"))
        for e in effects:
            if e["kind"] == "rollback" and (
                    e["output"] != (None if e["name"] == FAILING else f"out-{e['name']}")
                    or e["error"] != ["NonRetryableError", f"{FAILING} failed"]
                    or e["step_name"] != f"{e['name']}-1"):
                self.problems.append((ROLLED_BACK, f"handler {e['name']} saw {e}"))


class Sweep:
    """Every kill point, run: after and before each commit, and after each commit followed
    by a kill of the recovering process at its own first commit."""

    def __init__(self, bounds: Boundaries) -> None:
        self.bounds = bounds
        n = bounds.n
        self.points = ([KillPoint([("after", k)]) for k in range(1, n + 1)]
                       + [KillPoint([("before", k)]) for k in range(1, n + 1)]
                       + [KillPoint([("after", k), ("after", 1)]) for k in range(1, n + 1)])
        self.elapsed = 0.0

    def failing(self, invariant: str) -> dict[str, list[str]]:
        """The messages about ``invariant``, by kill point."""
        out: dict[str, list[str]] = {}
        for kp in self.points:
            found = [message for kind, message in kp.problems if kind == invariant]
            if found:
                out[kp.name] = found
        return out

    def left(self, state: str) -> list[str]:
        return [kp.name for kp in self.points if state in kp.states]


@pytest.fixture(scope="module")
def sweep(reference: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """Run every kill point; two fork servers share the work."""
    result = Sweep(reference["boundaries"])
    root = tmp_path_factory.mktemp("kills")

    def work(points: list[KillPoint]) -> None:
        server = ForkServer(PROGRAM, env=_env())
        try:
            for kp in points:
                kp.run(Case(root, kp.name), result.bounds, server)
        finally:
            server.close()

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for share in [pool.submit(work, result.points[i::2]) for i in range(2)]:
            share.result()
    result.elapsed = time.monotonic() - started
    return result


def _shown(failures: dict[str, list[str]]) -> str:
    return "\n".join(f"  {p}: {'; '.join(m)}" for p, m in sorted(failures.items())[:20])


def test_every_kill_lands_on_its_boundary(sweep: Sweep) -> None:
    """Each first process died by SIGKILL, leaving exactly what was committed at its boundary:
    after commit k, the content traced right after it; before commit k, the content of k-1
    (the k-th transaction is lost cleanly). Each recovering process killed at its first
    commit died too (unless it had nothing left to commit)."""
    n = sweep.bounds.n
    assert len(sweep.points) == 3 * n
    failures = sweep.failing(KILLED)
    assert not failures, _shown(failures)
    twice = [kp.name for kp in sweep.points if kp.killed == 2]
    # every recovery but the one of the finished instance has a commit to be killed at
    assert len(twice) >= n - 2, twice
    print(f"{len(sweep.points)} kill points at {n} commit boundaries in {sweep.elapsed:.1f} s "
          f"({len(twice)} recoveries killed too); left {COMPLETE_NOT_FINAL}: "
          f"{sweep.left(COMPLETE_NOT_FINAL)}; left {INDEX_AHEAD}: {sweep.left(INDEX_AHEAD)}")


def test_no_instance_is_lost(sweep: Sweep) -> None:
    failures = sweep.failing(LOST)
    assert not failures, _shown(failures)


def test_no_finished_step_or_handler_runs_again(sweep: Sweep) -> None:
    """A step or handler whose outcome was committed before a kill never runs again; one
    cut off runs once more (at-least-once), and every step ran."""
    failures = sweep.failing(RERUN)
    assert not failures, _shown(failures)


def test_every_rollback_completes(sweep: Sweep) -> None:
    """After recovery: errored with the step's error, every handler run in reverse start
    order with its step's stored output, and the rollback recorded as complete (20 of 20)."""
    failures = sweep.failing(ROLLED_BACK)
    assert not failures, _shown(failures)


def test_the_log_holds_one_rollback_phase(sweep: Sweep) -> None:
    """One ROLLBACK_START, one ROLLBACK_COMPLETE, one WORKFLOW_FAILURE, last (as
    tests/emulator/test_crash_recovery.py expects after a crash mid-rollback), also when the
    kill fell between the phase's outcome and the instance's failure (a recovery once logged
    ROLLBACK_COMPLETE a second time there)."""
    assert 2 <= len(sweep.left(COMPLETE_NOT_FINAL)) <= 6, sweep.left(COMPLETE_NOT_FINAL)
    failures = sweep.failing(ONE_PHASE)
    assert not failures, _shown(failures)


def test_registering_the_workflow_resumes_the_instance(sweep: Sweep) -> None:
    """``emu.workflow(...)`` alone (then ``settle()``, no ``wait()``) drives the recovered
    instance to its end, as its docstring says, and ``list()`` agrees with it. The index
    mirrors committed statuses only: no kill leaves it saying terminal while the instance's
    own file does not (it once did, killed just before the final commit, and the instance
    was then never resumed)."""
    assert sweep.left(INDEX_AHEAD) == []
    failures = sweep.failing(RESUMED)
    assert not failures, _shown(failures)
