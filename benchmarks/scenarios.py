"""What the suite measures: one `Scenario` per table row, and the plan for a given set of options.

Scenarios a)-e) of issue 11 run by default; ``--full`` adds the scale figures (25,000 steps,
memory of 10,000 finished instances). Every scenario has the same meaning on each engine.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

Kind = Literal["sequential", "rollback", "parallel", "one-by-one", "at-once", "sleep",
               "describe-time", "describe-rss", "rss"]
Floor = Literal["2 commits", "new file"]

MINIFLARE_STEP_LIMIT = 10_000
SLEEP_REASON = "its sleeps take real time: 30 days"
SCALE_REASON = "not measured on the local engine"


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"100,1_000"`` -> ``(100, 1000)``: a command line's list of sizes (argparse ``type``)."""
    try:
        values = tuple(int(v.replace("_", "")) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return values


@dataclass(frozen=True)
class Scenario:
    """One row of the table.

    Attributes:
        key: a stable identifier (``sequential-1000``), used in ``--json``.
        label: what the row shows.
        unit: the unit of every figure in the row.
        kind: which workload runs.
        n: steps (or handlers, or instances) per run.
        floor: which floor the emulator's figure is divided by, if any.
        wrangler_reason: why the row has no wrangler figure (``None``: it has one).
    """

    key: str
    label: str
    unit: str
    kind: Kind
    n: int
    floor: Floor | None = None
    wrangler_reason: str | None = None


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``--steps``, ``--parallel`` and ``--instances`` change them."""

    steps: tuple[int, ...] = (100, 1_000, 5_000)
    rollback_steps: tuple[int, ...] = (100, 1_000)
    parallel: int = 100
    instances: int = 200
    describe_steps: int = 10_000
    scale_steps: int = 25_000
    memory_instances: tuple[int, int] = (100, 10_000)


def _steps_reason(n: int) -> str | None:
    if n > MINIFLARE_STEP_LIMIT:
        return f"over miniflare's default limit of {MINIFLARE_STEP_LIMIT:,} steps per instance"
    return None


def plan(sizes: Sizes, full: bool) -> list[Scenario]:
    """The rows to measure, in table order."""
    rows: list[Scenario] = []
    seq = list(sizes.steps) + ([sizes.scale_steps] if full else [])
    rb = list(sizes.rollback_steps) + ([sizes.scale_steps] if full else [])
    for n in seq:
        rows.append(Scenario(f"sequential-{n}", f"a) sequential steps, N={n:,}", "µs/step",
                             "sequential", n, "2 commits", _steps_reason(n)))
    for n in rb:
        rows.append(Scenario(f"rollback-{n}", f"b) rollback handlers, N={n:,}", "µs/handler",
                             "rollback", n, "2 commits", _steps_reason(n)))
    rows.append(Scenario(f"parallel-{sizes.parallel}", f"c) {sizes.parallel} parallel steps",
                         "µs/step", "parallel", sizes.parallel, "2 commits"))
    rows.append(Scenario(f"one-by-one-{sizes.instances}",
                         f"d) {sizes.instances} one-step instances, one by one", "µs/instance",
                         "one-by-one", sizes.instances, "new file"))
    rows.append(Scenario(f"at-once-{sizes.instances}",
                         f"d) {sizes.instances} one-step instances, all at once", "µs/instance",
                         "at-once", sizes.instances, "new file"))
    rows.append(Scenario("sleep-30-days", "e) a 30-day sleep, wall time", "ms", "sleep", 1,
                         None, SLEEP_REASON))
    d = sizes.describe_steps
    rows.append(Scenario(f"describe-time-{d}", f"describe --json, {d:,}-step instance (CLI)",
                         "s", "describe-time", d, None, SCALE_REASON))
    rows.append(Scenario(f"describe-rss-{d}", f"describe --json, {d:,}-step instance, peak RSS",
                         "MB", "describe-rss", d, None, SCALE_REASON))
    if full:
        for n in sizes.memory_instances:
            rows.append(Scenario(f"rss-{n}", f"RSS with {n:,} finished instances (fresh process)",
                                 "MB", "rss", n, None, SCALE_REASON))
    return rows
