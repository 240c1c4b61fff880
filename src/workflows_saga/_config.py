"""Step and rollback configs: parsing, Cloudflare's validation, defaults and retry arithmetic.

Both backends use these rules, so a config rejected here is rejected the same way by the
emulator and before it ever reaches Cloudflare.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast

from ._durations import Duration, parse_duration_ms
from ._errors import InvalidStepConfigError

Backoff = Literal["constant", "linear", "exponential"]
DelayFunction = Callable[[Mapping[str, Any]], "str | int | float | Awaitable[str | int | float]"]
"""A dynamic retry delay: receives ``{"ctx", "error"}`` and returns a duration."""

BACKOFFS: tuple[Backoff, ...] = ("constant", "linear", "exponential")
CONFIG_DOCS = "https://developers.cloudflare.com/workflows/build/sleeping-and-retrying/"
MAX_RETRIES = 10_000

DEFAULT_CONFIG: dict[str, Any] = {
    "retries": {"limit": 5, "delay": 10_000, "backoff": "exponential"},
    "timeout": "10 minutes",
}
"""Cloudflare's documented defaults. A rollback handler without `rollback_config` uses these too."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a step is retried.

    ``limit`` and ``delay`` are both required, as Cloudflare requires them (checked when
    the config is given to ``step.do``); ``backoff`` defaults to ``"exponential"``.

    Attributes:
        limit: retries after the first attempt (attempts = limit + 1).
        delay: base delay before a retry, or a function of ``{"ctx", "error"}``.
        backoff: ``"constant"`` (delay), ``"linear"`` (delay * n) or ``"exponential"``
            (delay * 2 ** (n - 1)), n being the attempt that failed.
    """

    limit: int | None = None
    delay: Duration | DelayFunction | None = None
    backoff: Backoff | None = None


@dataclass(frozen=True)
class StepConfig:
    """A step's config, the typed twin of Workflows' ``WorkflowStepConfig``.

    Example:
        >>> StepConfig(retries=RetryPolicy(limit=2, delay="1 second"), timeout="30 seconds")
        StepConfig(retries=RetryPolicy(limit=2, delay='1 second', backoff=None), timeout='30 seconds', sensitive=None)
    """

    retries: RetryPolicy | None = None
    timeout: Duration | None = None
    sensitive: Literal["output"] | None = None

    def to_js(self) -> dict[str, Any]:
        """The JS-shaped dict the engine takes (only the keys that were given)."""
        out: dict[str, Any] = {}
        if self.retries is not None:
            retries: dict[str, Any] = {}
            if self.retries.limit is not None:
                retries["limit"] = self.retries.limit
            if self.retries.delay is not None:
                retries["delay"] = _plain_duration(self.retries.delay)
            if self.retries.backoff is not None:
                retries["backoff"] = self.retries.backoff
            out["retries"] = retries
        if self.timeout is not None:
            out["timeout"] = _plain_duration(self.timeout)
        if self.sensitive is not None:
            out["sensitive"] = self.sensitive
        return out


RollbackConfig = StepConfig
"""A rollback handler's config: only ``retries`` and ``timeout`` are allowed."""


def _plain_duration(value: Any) -> Any:
    return value.total_seconds() * 1000 if isinstance(value, timedelta) else value


def _invalid(kind: str, name: str, detail: str) -> InvalidStepConfigError:
    return InvalidStepConfigError(
        f'{kind} for "{name}" is in a invalid format. See {CONFIG_DOCS} ({detail})'
    )


def _check_duration(value: object, *, allow_function: bool, zero_ok: bool) -> str | None:
    if allow_function and callable(value):
        return None
    ms = parse_duration_ms(value)
    if ms is None:
        return "expected milliseconds or a string such as \"10 seconds\""
    if ms < 0:
        return "must not be negative"
    if not zero_ok and ms == 0:
        return "must not be 0"
    return None


def _parse_retries(r: Any, kind: str, step_name: str) -> RetryPolicy:
    """Validate a config's ``retries`` (a dict or `RetryPolicy`) as Cloudflare does.

    As in workers-sdk's ``validators.ts``, ``limit`` and ``delay`` are both required;
    ``backoff`` is optional (the default's ``"exponential"`` applies).
    """
    if isinstance(r, RetryPolicy):
        r = {k: v for k, v in vars(r).items() if v is not None}
    if not isinstance(r, Mapping):
        raise _invalid(kind, step_name, "retries must be a dict with limit, delay, backoff")
    extra = sorted(set(r) - {"limit", "delay", "backoff"})
    if extra:
        raise _invalid(kind, step_name, f"unknown retries key(s) {extra}")
    missing = [k for k in ("limit", "delay") if r.get(k) is None]
    if missing:
        raise _invalid(kind, step_name, f"retries needs both limit and delay; missing {missing}")
    limit = r["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
        raise _invalid(kind, step_name, "retries.limit must be a number >= 0")
    if limit > MAX_RETRIES:
        raise _invalid(kind, step_name, f"retries.limit must be at most {MAX_RETRIES}")
    delay = r["delay"]
    problem = _check_duration(delay, allow_function=True, zero_ok=True)
    if problem:
        raise _invalid(kind, step_name, f"retries.delay {problem}")
    backoff = r.get("backoff")
    if backoff is not None and backoff not in BACKOFFS:
        raise _invalid(kind, step_name, f"retries.backoff must be one of {list(BACKOFFS)}")
    return RetryPolicy(
        limit=int(limit),
        delay=delay,
        backoff=cast("Backoff | None", backoff),
    )


def parse_step_config(
    value: StepConfig | Mapping[str, Any] | None, *, step_name: str, rollback: bool = False
) -> StepConfig | None:
    """Validate ``value`` as Cloudflare does and return it as a `StepConfig`.

    Args:
        value: a `StepConfig`, a JS-shaped dict, or ``None``.
        step_name: the step's name, for the error message.
        rollback: validate as a ``rollback_config`` (retries and timeout only).

    Raises:
        InvalidStepConfigError: with Cloudflare's message and what was wrong.
    """
    if value is None:
        return None
    kind = "Rollback config" if rollback else "Step config"
    if isinstance(value, StepConfig):
        raw: dict[str, Any] = value.to_js()
        if value.retries is not None and callable(value.retries.delay):
            raw["retries"]["delay"] = value.retries.delay
    elif isinstance(value, Mapping):
        raw = dict(value)
    else:
        raise _invalid(kind, step_name, f"expected a dict or StepConfig, got {type(value).__name__}")

    allowed = {"retries", "timeout"} if rollback else {"retries", "timeout", "sensitive"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _invalid(kind, step_name, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")

    retries = _parse_retries(raw["retries"], kind, step_name) if "retries" in raw else None

    timeout = raw.get("timeout")
    if timeout is not None:
        problem = _check_duration(timeout, allow_function=False, zero_ok=False)
        if problem:
            raise _invalid(kind, step_name, f"timeout {problem}")

    sensitive = raw.get("sensitive")
    if sensitive is not None and sensitive != "output":
        raise _invalid(kind, step_name, 'sensitive must be "output"')

    return StepConfig(retries=retries, timeout=timeout, sensitive=sensitive)


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A step's config merged over the defaults, with what the engine derives from it, once.

    Attributes:
        shown: the config as steps see it in ``ctx.config`` and as the engine stores it
            (plain JSON: a delay function is left out).
        delay_function: the dynamic retry delay, if the step gave one.
        attempts: total attempts allowed: the first one plus ``retries.limit``.
        timeout_ms: the per-attempt timeout.
    """

    shown: Mapping[str, Any]
    delay_function: DelayFunction | None
    attempts: int
    timeout_ms: int

    @classmethod
    def from_shown(cls, shown: Mapping[str, Any],
                   delay_function: DelayFunction | None = None) -> ResolvedConfig:
        """Rebuild from the stored (shown) form; a delay function is never stored, so the
        replaying step passes its own."""
        ms = parse_duration_ms(shown["timeout"])
        assert ms is not None, "a shown config was validated when it was resolved"
        return cls(shown, delay_function, int(shown["retries"]["limit"]) + 1, int(ms))

    @property
    def backoff(self) -> Backoff:
        """How the delay grows from one retry to the next."""
        return cast("Backoff", self.shown["retries"].get("backoff", "exponential"))

    @property
    def base_delay_ms(self) -> float:
        """The static base delay (0 when a delay function decides it)."""
        return parse_duration_ms(self.shown["retries"].get("delay", 0)) or 0.0

    def retry_delay_ms(self, failed_attempt: int, base_ms: float | None = None) -> int:
        """The wait before the attempt after ``failed_attempt`` (1-based), backed off.

        ``base_ms`` overrides the static base delay (what a delay function returned).
        """
        base = self.base_delay_ms if base_ms is None else base_ms
        if self.backoff == "constant":
            return int(base)
        if self.backoff == "linear":
            return int(base * failed_attempt)
        return int(base * 2 ** (failed_attempt - 1))


def _merge_over_defaults(config: StepConfig | None) -> dict[str, Any]:
    user = config.to_js() if config is not None else {}
    merged = {**DEFAULT_CONFIG, **user}
    retries = {**DEFAULT_CONFIG["retries"], **user.get("retries", {})}
    merged["retries"] = {k: v for k, v in retries.items() if not callable(v)}
    return merged


DEFAULT_RESOLVED = ResolvedConfig.from_shown(_merge_over_defaults(None))
"""What a step without a config of its own runs with (resolved once)."""


def resolve_config(config: StepConfig | None) -> ResolvedConfig:
    """Merge ``config`` over the defaults the way the engine does (shallow, plus ``retries``).

    Example:
        >>> resolve_config(StepConfig(retries=RetryPolicy(limit=2, delay="1 second"))).attempts
        3
    """
    if config is None:
        return DEFAULT_RESOLVED
    delay = config.retries.delay if config.retries is not None else None
    function = delay if callable(delay) else None
    return ResolvedConfig.from_shown(_merge_over_defaults(config), function)
