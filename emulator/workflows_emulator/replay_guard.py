"""The determinism guard: does ``run()``, replayed, ask for the steps its log holds, in order?

When a deployed workflow's code changes under a sleeping instance (a step renamed,
reordered or removed, or its config changed), Cloudflare silently re-keys the steps: a
renamed step runs again, a removed one is skipped. `ReplayGuard` notices instead. Each run
of ``run()`` starts with the log's forward steps in start order; each step asked for is
compared with the one logged at the same position; a run that ends with logged steps never
asked for is a divergence too. The first divergence is described by a `NonDeterminismError`
that names the step and shows both sequences.

``mode``: ``"error"`` (tests: the instance stops where it is and waiting on it raises),
``"warn"`` (dev: a `NonDeterminismWarning`, and the run carries on as on Cloudflare) or
``"off"``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import EmulatorError
from .log_fold import StepRow

MODES = ("error", "warn", "off")
_FORWARD = ("do", "sleep", "wait")
_KIND_SHOWN = {"do": "step.do", "sleep": "step.sleep", "wait": "step.wait_for_event"}


class NonDeterminismError(EmulatorError):
    """Replaying ``run()`` asked for other steps than its log holds (see `replay_guard`)."""


class NonDeterminismWarning(UserWarning):
    """The same finding as `NonDeterminismError`, in ``"warn"`` mode (the dev server)."""


def check_mode(mode: str) -> str:
    """``mode`` if it is one of `MODES`; `EmulatorError` saying which are otherwise."""
    if mode not in MODES:
        raise EmulatorError(f"determinism must be one of {MODES}, not {mode!r}")
    return mode


def _label(kind: str, name: str, count: int) -> str:
    return f"{_KIND_SHOWN.get(kind, kind)} {name!r}" + (f" #{count}" if count > 1 else "")


class ReplayGuard:
    """Compares one run's steps with the log it started from."""

    def __init__(self, instance_id: str, workflow: str, mode: str = "error") -> None:
        self.instance_id = instance_id
        self.workflow = workflow
        self.mode = check_mode(mode)
        self._expected: list[tuple[str, str, int, Any]] = []
        self._asked: list[tuple[str, str, int]] = []
        self.divergence: NonDeterminismError | None = None
        self._warned = False

    def new_run(self, rows: Iterable[StepRow]) -> None:
        """``run()`` starts from the top over ``rows`` (what the log holds now)."""
        if self.mode == "off":
            self._expected, self._asked = [], []
            return
        forward = sorted((r for r in rows if r.kind in _FORWARD), key=lambda r: r.seq)
        self._expected = [(r.kind, r.name, r.count, r.config if r.kind == "do" else None)
                          for r in forward]
        self._asked = []

    @property
    def replaying(self) -> bool:
        """Whether the run is still within what the log holds."""
        return len(self._asked) < len(self._expected)

    def asked(self, kind: str, name: str, count: int,
              config: Mapping[str, Any] | None = None) -> None:
        """``run()`` asks for a step; raises or warns on a divergence (by `mode`)."""
        if self.mode == "off":
            return
        position = len(self._asked)
        self._asked.append((kind, name, count))
        if position >= len(self._expected):
            return  # past the log: new steps
        want_kind, want_name, want_count, want_config = self._expected[position]
        if (want_kind, want_name, want_count) != (kind, name, count):
            self._diverged(
                f"at position {position + 1} run() asked for {_label(kind, name, count)} "
                f"where the log has {_label(want_kind, want_name, want_count)}")
        elif kind == "do" and want_config is not None and config is not None and \
                _canon(want_config) != _canon(config):
            self._diverged(
                f"{_label(kind, name, count)} now has the config {_canon(config)}; it ran "
                f"with {_canon(want_config)}")

    def run_ended(self) -> None:
        """``run()`` returned or raised: a logged step it never asked for is a divergence."""
        if self.mode == "off" or self.divergence is not None or not self.replaying:
            return
        kind, name, count, _ = self._expected[len(self._asked)]
        self._diverged(f"run() ended without asking for {_label(kind, name, count)}, which "
                       "the log holds (a step removed?)")

    def _diverged(self, what: str) -> None:
        logged = ", ".join(_label(k, n, c) for k, n, c, _ in self._expected) or "nothing"
        asked = ", ".join(_label(k, n, c) for k, n, c in self._asked) or "nothing"
        error = NonDeterminismError(
            f'instance {self.instance_id} of "{self.workflow}" is not deterministic on '
            f"replay: {what}.\n  logged: {logged}\n  asked:  {asked}\n"
            "Cloudflare would re-key the steps silently (a renamed step runs again, a removed "
            "one is skipped): keep step names, order and configs stable while instances are "
            "in flight, or let them finish before deploying the change.")
        if self.mode == "warn":
            if not self._warned:
                self._warned = True
                warnings.warn(NonDeterminismWarning(str(error)), stacklevel=2)
            return
        if self.divergence is None:
            self.divergence = error
        raise error


def _canon(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)
