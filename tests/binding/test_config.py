"""Config parsing, Cloudflare's validation messages, defaults and retry arithmetic."""

from datetime import timedelta

import pytest

from workflows_saga import InvalidStepConfigError, RetryPolicy, StepConfig
from workflows_saga._config import (
    CONFIG_DOCS,
    ResolvedConfig,
    parse_step_config,
    resolve_config,
)
from workflows_saga._durations import duration_ms, parse_duration_ms

INVALID = 'Step config for "s" is in a invalid format. See https://developers.cloudflare.com/workflows/build/sleeping-and-retrying/'


@pytest.mark.parametrize(
    ("text", "ms"),
    [("10 seconds", 10_000), ("1 second", 1000), ("2 minutes", 120_000), ("1 hour", 3_600_000),
     ("3 days", 3 * 86_400_000), ("1 week", 7 * 86_400_000), (250, 250), (0, 0),
     (timedelta(seconds=1.5), 1500)],
)
def test_durations(text: object, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["soon", "10 fortnights", "", None, True, float("nan")])
def test_bad_durations(bad: object) -> None:
    assert parse_duration_ms(bad) is None
    with pytest.raises(ValueError, match="invalid duration"):
        duration_ms(bad)


def test_defaults_are_the_documented_ones() -> None:
    resolved = resolve_config(None)
    assert resolved.shown == {
        "retries": {"limit": 5, "delay": 10_000, "backoff": "exponential"},
        "timeout": "10 minutes",
    }
    assert resolved.attempts == 6
    assert resolved.timeout_ms == 600_000
    assert resolved.delay_function is None
    assert resolve_config(None) is resolved  # derived once


def test_a_delay_function_is_kept_but_never_shown() -> None:
    def delay(_: object) -> int:
        return 5

    resolved = resolve_config(parse_step_config({"retries": {"limit": 1, "delay": delay}},
                                                step_name="s"))
    assert resolved.delay_function is delay
    assert resolved.shown["retries"] == {"limit": 1, "backoff": "exponential"}
    assert ResolvedConfig.from_shown(resolved.shown, delay) == resolved


def test_merge_is_shallow_plus_retries() -> None:
    cfg = parse_step_config({"retries": {"limit": 1, "delay": 0}}, step_name="s")
    resolved = resolve_config(cfg)
    assert resolved.shown["retries"] == {"limit": 1, "delay": 0, "backoff": "exponential"}
    assert resolved.shown["timeout"] == "10 minutes"


def test_typed_and_dict_configs_are_equivalent() -> None:
    typed = StepConfig(retries=RetryPolicy(limit=2, delay="1 second", backoff="linear"),
                       timeout=timedelta(seconds=30))
    as_dict = {"retries": {"limit": 2, "delay": "1 second", "backoff": "linear"}, "timeout": 30000}
    assert resolve_config(parse_step_config(typed, step_name="s")) == resolve_config(
        parse_step_config(as_dict, step_name="s"))


@pytest.mark.parametrize(
    "bad",
    [
        {"retries": {"limit": -1, "delay": 0}},
        {"retries": {"limit": "3", "delay": 0}},
        {"retries": {"limit": 1, "delay": "soon"}},
        {"retries": {"limit": 1, "delay": 0, "backoff": "fibonacci"}},
        {"retries": {"limit": 1, "delay": 0, "jitter": True}},
        {"timeout": 0},
        {"timeout": "forever"},
        {"retry": {"limit": 1}},
        {"sensitive": "input"},
        "10 seconds",
    ],
)
def test_invalid_step_configs_use_cloudflares_message(bad: object) -> None:
    with pytest.raises(InvalidStepConfigError) as info:
        parse_step_config(bad, step_name="s")  # type: ignore[arg-type]
    assert str(info.value).startswith(INVALID)


def test_rollback_config_takes_only_retries_and_timeout() -> None:
    assert parse_step_config({"retries": {"limit": 0, "delay": 0}, "timeout": "1 minute"},
                             step_name="s", rollback=True) is not None
    with pytest.raises(InvalidStepConfigError, match=r'^Rollback config for "s" is in a invalid format'):
        parse_step_config({"sensitive": "output"}, step_name="s", rollback=True)


@pytest.mark.parametrize("retries", [{"limit": 1}, {"delay": "1 second"}, {},
                                     {"limit": 1, "delay": None}, RetryPolicy(limit=2)])
@pytest.mark.parametrize("rollback", [False, True])
def test_retries_need_both_limit_and_delay(retries: object, rollback: bool) -> None:
    # workers-sdk validators.ts: retries = {delay, limit, backoff?}, strict.
    kind = "Rollback config" if rollback else "Step config"
    config = StepConfig(retries=retries) if isinstance(retries, RetryPolicy) else {"retries": retries}
    with pytest.raises(InvalidStepConfigError) as info:
        parse_step_config(config, step_name="s", rollback=rollback)  # type: ignore[arg-type]
    assert str(info.value).startswith(f'{kind} for "s" is in a invalid format. See {CONFIG_DOCS}')
    assert "retries needs both limit and delay" in str(info.value)


def test_delay_zero_is_valid() -> None:
    assert parse_step_config({"retries": {"limit": 1, "delay": 0}}, step_name="s") is not None


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [("constant", [1000, 1000, 1000]), ("linear", [1000, 2000, 3000]),
     ("exponential", [1000, 2000, 4000])],
)
def test_backoff(backoff: str, delays: list[int]) -> None:
    resolved = resolve_config(parse_step_config(
        {"retries": {"limit": 3, "delay": 1000, "backoff": backoff}}, step_name="s"))
    assert [resolved.retry_delay_ms(n) for n in (1, 2, 3)] == delays
