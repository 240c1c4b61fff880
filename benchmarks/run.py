"""``make bench``: the emulator next to the SQLite floor and wrangler's local engine, in one run.

Usage: ``python -m benchmarks.run [--full] [--repeat 3] [--no-wrangler] [--markdown] [--json PATH]``
(``--render PATH`` shows a saved ``--json`` run again; ``--help`` lists the size options).

Default rows (issue 11's scenarios a-e): sequential steps (N = 100 / 1,000 / 5,000), rollback
handlers (N = 100 / 1,000), 100 parallel steps, 200 one-step instances (one by one; all at
once), a 30-day sleep on the virtual clock, and ``describe --json`` of a 10,000-step instance.
``--full`` adds 25,000 steps and 25,000 handlers (emulator only) and the RSS of a fresh
process holding 100 and then 10,000 finished instances (one run each). Progress goes to
stderr, the table to stdout. No figure is checked against anything: the target lines are
for reading.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import emulator_scale, emulator_scenarios, floor, report, scenarios, wrangler_scenarios
from .report import Report, Row
from .scenarios import Scenario, Sizes, parse_sizes

FLOOR_STEPS = 1_000
FSYNC_WRITES = 50
TIMED_KINDS = ("sequential", "rollback", "parallel", "one-by-one", "at-once", "sleep")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description=(__doc__ or "").splitlines()[0])
    p.add_argument("--full", action="store_true",
                   help="also 25,000 steps/handlers and RSS of 100 vs 10,000 finished instances (minutes)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per timed scenario (default 3)")
    p.add_argument("--no-wrangler", action="store_true", help="skip wrangler's local engine")
    p.add_argument("--steps", type=parse_sizes, default=Sizes.steps, metavar="N,N,...",
                   help="sizes of the sequential scenario (default 100,1000,5000)")
    p.add_argument("--rollback-steps", type=parse_sizes, default=Sizes.rollback_steps, metavar="N,N,...",
                   help="sizes of the rollback scenario (default 100,1000)")
    p.add_argument("--parallel", type=int, default=Sizes.parallel, help="parallel steps (default 100)")
    p.add_argument("--instances", type=int, default=Sizes.instances,
                   help="one-step instances (default 200)")
    p.add_argument("--describe-steps", type=int, default=Sizes.describe_steps,
                   help="steps of the instance that describe shows (default 10000)")
    p.add_argument("--poll-ms", type=float, default=2.0,
                   help="how often the JS Worker polls status on wrangler's engine (default 2 ms)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead")
    p.add_argument("--json", metavar="PATH", help="also write every sample as JSON to PATH ('-': stdout)")
    p.add_argument("--tmp", metavar="DIR", help="where state goes (default: the system temp folder)")
    p.add_argument("--render", metavar="PATH",
                   help="measure nothing: show a run saved with --json (with --markdown: as Markdown)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _machine(engine: str) -> dict[str, str]:
    model = "unknown CPU"
    virtual = False
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and " hypervisor" in line:
                virtual = True
    except OSError:
        model = platform.processor() or model
    load = f", load {os.getloadavg()[0]:.1f} at start" if hasattr(os, "getloadavg") else ""
    return {
        "machine": f"{os.cpu_count()}-core {'VM' if virtual else 'machine'}, {model}{load}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "wrangler": engine or "wrangler's engine not run",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _measure_floors(work: Path, instances: int) -> dict[str, float]:
    return {
        "1 commit": floor.commits_us(work, FLOOR_STEPS, 1),
        "2 commits": floor.commits_us(work, FLOOR_STEPS, 2),
        "new file": floor.new_file_us(work, instances),
        "empty file": floor.empty_file_us(work, instances),
        "fsync": floor.fsync_us(work, FSYNC_WRITES),
    }


def _timed_rounds(rows: list[Row], repeat: int, work: Path, instances: int) -> dict[str, float]:
    """Each round: the floors, then every timed scenario once on a fresh state directory."""
    floors: dict[str, list[float]] = {}
    for rnd in range(repeat):
        _progress(f"round {rnd + 1}/{repeat}: floors")
        measured = _measure_floors(work, instances)
        for name, value in measured.items():
            floors.setdefault(name, []).append(value)
        for row in rows:
            s = row.scenario
            if s.kind not in TIMED_KINDS:
                continue
            _progress(f"round {rnd + 1}/{repeat}: emulator, {s.label}")
            row.emulator.append(emulator_scenarios.measure(work / f"emu-{rnd}-{s.key}", s))
            if s.floor is not None:
                row.floor.append(measured[s.floor])
    return {name: statistics.median(values) for name, values in floors.items()}


def _describe_rows(rows: list[Row], repeat: int, work: Path) -> None:
    time_row = next((r for r in rows if r.scenario.kind == "describe-time"), None)
    rss_row = next((r for r in rows if r.scenario.kind == "describe-rss"), None)
    if time_row is None or rss_row is None:
        return
    steps = time_row.scenario.n
    _progress(f"describe: building a {steps:,}-step instance")
    state = emulator_scale.prepare_describe(work, steps)
    for rnd in range(repeat):
        _progress(f"describe --json, run {rnd + 1}/{repeat}")
        cost = emulator_scale.describe_cost(state, steps)
        time_row.emulator.append(cost.seconds)
        rss_row.emulator.append(cost.peak_mb)


def _memory_rows(rows: list[Row], work: Path) -> None:
    for row in rows:
        if row.scenario.kind == "rss":
            _progress(f"memory: {row.scenario.n:,} finished instances in a fresh process")
            row.emulator.append(emulator_scale.finished_instances_rss_mb(work, row.scenario.n))


def _change(report_: Report, small: str, large: str) -> float | None:
    a, b = report_.row(small), report_.row(large)
    if a is None or b is None or a.emulator_median is None or b.emulator_median is None:
        return None
    return b.emulator_median / a.emulator_median - 1


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _target_notes(rep: Report, sizes: Sizes) -> list[str]:
    """The issue's targets next to this run's figures, each said met or missed in this run
    (for reading; nothing is asserted)."""
    notes: list[str] = []
    big = sizes.scale_steps
    for kind, what in (("sequential", "per step"), ("rollback", "per handler")):
        change = _change(rep, f"{kind}-1000", f"{kind}-{big}")
        if change is not None:
            notes.append(f"Target: {big:,} steps within 10% of 1,000, {what}: {change:+.0%} this "
                         f"run ({_verdict(abs(change) <= 0.10)}).")
    for key in (f"sequential-{n}" for n in sizes.steps):
        row = rep.row(key)
        if row is not None and row.floor_ratio is not None:
            notes.append(f"Target: {row.scenario.label} within 2x the two-commit floor: "
                         f"{row.floor_ratio:.2f}x this run ({_verdict(row.floor_ratio <= 2)}).")
    for key, goal in (("one-by-one", 1000.0), ("at-once", 500.0)):
        row = next((r for r in rep.rows if r.scenario.kind == key), None)
        if row is not None and row.emulator_median is not None:
            empty = rep.floors.get("empty file")
            kernel = "" if empty is None else f"; a new empty file alone cost {empty:,.0f} µs"
            notes.append(f"Target: {row.scenario.label} at most {goal:,.0f} µs each: "
                         f"{row.emulator_median:,.0f} µs this run{kernel} "
                         f"({_verdict(row.emulator_median <= goal)}).")
    low, high = (rep.row(f"rss-{n}") for n in sizes.memory_instances)
    if low and high and low.emulator_median is not None and high.emulator_median is not None:
        added = high.emulator_median - low.emulator_median
        notes.append(f"Target: {sizes.memory_instances[0]:,} → {sizes.memory_instances[1]:,} finished "
                     f"instances adds < 50 MB RSS: {added:+.1f} MB this run (one run each; "
                     f"{_verdict(added < 50)}).")
    t, m = rep.row(f"describe-time-{sizes.describe_steps}"), rep.row(f"describe-rss-{sizes.describe_steps}")
    if t and m and t.emulator_median is not None and m.emulator_median is not None:
        figures = (f"{t.emulator_median:.2f} s, {m.emulator_median:.0f} MB peak this run (a whole "
                   "CLI process: interpreter start-up included)")
        if sizes.describe_steps == DESCRIBE_TARGET_STEPS:
            met = t.emulator_median < 0.5 and m.emulator_median < 100
            notes.append(f"Target: describe --json of a {DESCRIBE_TARGET_STEPS:,}-step instance "
                         f"< 0.5 s and < 100 MB: {figures} ({_verdict(met)}).")
        else:
            notes.append(f"describe --json of a {sizes.describe_steps:,}-step instance: {figures}; "
                         f"the target (< 0.5 s, < 100 MB) is for {DESCRIBE_TARGET_STEPS:,} steps.")
    return notes


DESCRIBE_TARGET_STEPS = 10_000


def run(args: argparse.Namespace, emit: Callable[[str], None] = print) -> Report:
    """Measure everything ``args`` asks for; emit the table; return the report."""
    sizes = Sizes(steps=args.steps, rollback_steps=args.rollback_steps, parallel=args.parallel,
                  instances=args.instances, describe_steps=args.describe_steps)
    plan: list[Scenario] = scenarios.plan(sizes, args.full)
    if args.no_wrangler:
        plan = [Scenario(s.key, s.label, s.unit, s.kind, s.n, s.floor,
                         s.wrangler_reason or "--no-wrangler") for s in plan]
    rows = [Row(s) for s in plan]
    work = Path(tempfile.mkdtemp(prefix="workflows-bench-", dir=args.tmp))
    try:
        floors = _timed_rounds(rows, args.repeat, work, sizes.instances)
        _describe_rows(rows, args.repeat, work)
        _memory_rows(rows, work)
        _progress("wrangler's local engine" if not args.no_wrangler else "wrangler skipped")
        wr = wrangler_scenarios.measure(plan, args.repeat, work, args.poll_ms, timeout=1800)
        for row in rows:
            row.wrangler = wr.samples.get(row.scenario.key, [])
            row.wrangler_note = wr.reasons.get(row.scenario.key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rep = Report(_machine(wr.engine), floors, rows, args.repeat)
    rep.notes = _target_notes(rep, sizes)
    emit(report.markdown(rep) if args.markdown else report.plain(rep))
    if args.json:
        text = report.as_json(rep)
        if args.json == "-":
            emit(text)
        else:
            Path(args.json).write_text(text + "\n")
    return rep


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        saved = report.from_json(Path(args.render).read_text())
        print(report.markdown(saved) if args.markdown else report.plain(saved))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
