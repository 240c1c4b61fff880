"""The Pyodide backend's pure parts under CPython: JS errors, rollback contexts, configs.

No ``js``/``pyodide`` here: JS errors are stand-ins with ``.name`` and ``.message``, and
``workers.rpc`` (the one JS conversion) is faked where the converting wrappers are checked.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from workflows_saga import (
    NonRetryableError,
    RetryPolicy,
    StepConfig,
    StepContext,
    StepError,
    WorkflowTimeoutError,
    _pyodide,
)
from workflows_saga._backend import RollbackOptions, StepCall
from workflows_saga._pyodide import (
    RollbackArgument,
    _config_to_js,
    error_from_js,
    parse_js_error,
    plain_config,
    rollback_argument,
    rollback_context,
)
from workflows_saga.backend import ErrorRecord


def js_error(name: str, message: str) -> SimpleNamespace:
    """A stand-in for a JS ``Error`` proxy / ``JsException``: only name and message are read."""
    return SimpleNamespace(name=name, message=message)


def traceback(last_line: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/session/metadata/entry.py", line 12, in charge\n'
        "    raise boom\n"
        f"{last_line}\n"
    )


@pytest.mark.parametrize(
    ("last_line", "record", "expected"),
    [
        ("workflows_saga._errors.NonRetryableError: card declined",
         ErrorRecord("NonRetryableError", "card declined"), NonRetryableError),
        ("TypeError: unsupported operand", ErrorRecord("TypeError", "unsupported operand"),
         TypeError),
        ("ValueError: bad amount", ErrorRecord("ValueError", "bad amount"), ValueError),
        ("KeyError: 'account'", ErrorRecord("KeyError", "'account'"), StepError),
        ("myapp.errors.LedgerError: out of sync", ErrorRecord("LedgerError", "out of sync"),
         StepError),
        ("workflows_saga._errors.StepError: KeyError: 'k'", ErrorRecord("KeyError", "'k'"),
         StepError),
        ("RuntimeError", ErrorRecord("RuntimeError", ""), StepError),
    ],
)
@pytest.mark.parametrize("js_name", ["PythonError", "Error"])
def test_a_python_traceback_names_the_original_error(
    last_line: str, record: ErrorRecord, expected: type[Exception], js_name: str
) -> None:
    message = traceback(last_line)
    if js_name == "Error":  # after an RPC hop: a plain Error whose message keeps the prefix
        message = "PythonError: " + message
    assert parse_js_error(js_name, message) == record
    exc = error_from_js(js_error(js_name, message))
    assert type(exc) is expected
    if expected is StepError:
        assert isinstance(exc, StepError)
        assert (exc.name, exc.message) == (record.name, record.message)
    else:
        assert str(exc) == record.message


def test_plain_js_errors() -> None:
    assert parse_js_error("Error", "NonRetryableError: no more") == ErrorRecord(
        "NonRetryableError", "no more")
    assert parse_js_error(None, None) == ErrorRecord("Error", "")
    exc = error_from_js(js_error("RangeError", "bad index"))
    assert isinstance(exc, StepError) and (exc.name, exc.message) == ("RangeError", "bad index")


@pytest.mark.parametrize("message", ["Execution timed out after 1000ms",
                                     "Execution timed out after 86400000ms"])
def test_workflow_timeout_errors(message: str) -> None:
    exc = error_from_js(js_error("WorkflowTimeoutError", message))
    assert type(exc) is WorkflowTimeoutError
    assert str(exc) == message and exc.name == "WorkflowTimeoutError"


def test_our_own_errors_pass_through() -> None:
    mine = NonRetryableError("stop")
    assert error_from_js(mine) is mine
    step_error = StepError("x", name="KeyError")
    assert error_from_js(step_error) is step_error
    other = error_from_js(RuntimeError("no name attribute"))  # message from str(exc)
    assert isinstance(other, StepError) and other.message == "no name attribute"


CTX = {"step": {"name": "charge", "count": 2}, "attempt": 3, "config": {"timeout": 1000}}


def test_rollback_context_of_a_successful_step() -> None:
    arg = RollbackArgument(output={"charge_id": "ch_1"}, ctx=CTX,
                           error=js_error("PythonError", traceback("ValueError: run failed")),
                           label="charge-2")
    rb = rollback_context(arg, "charge")
    assert rb.output == {"charge_id": "ch_1"} and rb.step_name == "charge-2"
    assert type(rb.error) is ValueError and str(rb.error) == "run failed"
    assert isinstance(rb.ctx, StepContext)
    assert (rb.ctx.name, rb.ctx.count, rb.ctx.attempt) == ("charge", 2, 3)


def test_rollback_context_of_a_failed_step() -> None:
    arg = RollbackArgument(output=None, ctx=CTX, error=js_error("Error", "Instance terminated"))
    rb = rollback_context(arg, "charge")
    assert rb.output is None
    assert rb.step_name == "charge-2"  # no stepName: made from the ctx
    assert isinstance(rb.error, StepError) and rb.error.message == "Instance terminated"


def test_rollback_context_without_ctx_or_error() -> None:
    rb = rollback_context(RollbackArgument(), "charge")
    assert rb.output is None and rb.step_name == "charge" and rb.ctx == StepContext()
    assert isinstance(rb.error, StepError) and (rb.error.name, rb.error.message) == ("Error", "")


def test_plain_config_turns_timedeltas_into_milliseconds() -> None:
    config = StepConfig(
        retries=RetryPolicy(limit=2, delay=timedelta(seconds=3), backoff="linear"),
        timeout=timedelta(minutes=1),
    )
    assert plain_config(config) == {
        "retries": {"limit": 2, "delay": 3000.0, "backoff": "linear"},
        "timeout": 60000.0,
    }
    strings = StepConfig(retries=RetryPolicy(delay="5 seconds"), timeout="2 minutes")
    assert plain_config(strings) == {"retries": {"delay": "5 seconds"}, "timeout": "2 minutes"}
    assert plain_config(StepConfig()) == {}


async def test_a_delay_function_is_adapted_for_the_engine() -> None:
    seen: list[Any] = []

    async def delay(arg: Any) -> timedelta:
        seen.append(arg)
        return timedelta(seconds=arg["ctx"]["attempt"])

    raw = plain_config(StepConfig(retries=RetryPolicy(limit=3, delay=delay)),
                       to_py=lambda js: {"ctx": js["ctx"], "error": js["error"], "converted": True})
    adapter = raw["retries"]["delay"]
    assert await adapter({"ctx": {"attempt": 2}, "error": "boom"}) == 2000.0
    assert seen == [{"ctx": {"attempt": 2}, "error": "boom", "converted": True}]

    sync = plain_config(StepConfig(retries=RetryPolicy(delay=lambda arg: f"{arg['value']} ms")))
    assert await sync["retries"]["delay"](7) == "7 ms"  # a non-mapping argument is wrapped


@pytest.fixture
def fake_rpc(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """``workers.rpc`` that tags what it converts, so the converting wrappers can be checked."""
    log: list[tuple[str, Any]] = []
    rpc = ModuleType("workers.rpc")
    rpc.python_to_rpc = lambda v: log.append(("to_js", v)) or ("js", v)  # type: ignore[attr-defined]
    rpc.python_from_rpc = lambda v: log.append(("to_py", v)) or v  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workers", ModuleType("workers"))
    monkeypatch.setitem(sys.modules, "workers.rpc", rpc)
    return log


def test_config_to_js_converts_the_plain_config_once(fake_rpc: list[tuple[str, Any]]) -> None:
    converted = _config_to_js(StepConfig(timeout=timedelta(seconds=30)))
    assert converted == ("js", {"timeout": 30000.0})
    assert fake_rpc == [("to_js", {"timeout": 30000.0})]


def test_rollback_argument_converts_output_and_ctx(fake_rpc: list[tuple[str, Any]]) -> None:
    error = js_error("Error", "x")
    js_arg = SimpleNamespace(output=[1], ctx=CTX, error=error, stepName="charge-2")
    assert rollback_argument(js_arg) == RollbackArgument([1], CTX, error, "charge-2")
    assert fake_rpc == [("to_py", [1]), ("to_py", CTX)]
    assert "js" not in sys.modules and "pyodide" not in sys.modules


async def test_concurrent_calls_reach_the_engine_in_call_order(
        fake_rpc: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    # The first call's rollback options await the SDK's workflows.js module; the second call
    # (no options) must still reach the JS step after it: the engine counts by arrival.
    async def slow_module() -> Any:
        await asyncio.sleep(0.01)
        return SimpleNamespace(wrapWorkflowStepCallback=lambda proxy: proxy)

    ffi = SimpleNamespace(create_proxy=lambda f: f, to_js=lambda d, dict_converter: d)
    monkeypatch.setattr(_pyodide, "_ffi", lambda: (ffi, SimpleNamespace(Object=SimpleNamespace(
        fromEntries=dict))))
    monkeypatch.setattr(_pyodide, "_workflows_js_module", slow_module)
    issued: list[str] = []

    async def answer(name: str) -> str:
        return name

    def do(name: str, *args: Any) -> Any:
        issued.append(name)
        return answer(name)

    backend = _pyodide.PyodideStepBackend(SimpleNamespace(do=do))

    async def body(ctx: Any) -> None: ...

    async def handler(rb: Any) -> None: ...

    first = StepCall("a", body, rollback=RollbackOptions(handler))
    assert await asyncio.gather(backend.do(first), backend.do(StepCall("b", body))) == ["a", "b"]
    assert issued == ["a", "b"]
