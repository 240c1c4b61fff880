"""`PyodideStepBackend`: the `StepBackend` over Cloudflare's real Workflows engine.

Used only inside Pyodide (Python Workers). ``run()`` receives the official SDK's step wrapper
(``workers`` 1.9.x ``_WorkflowStepWrapper``); its private ``_js_step`` is the engine's JS
``WorkflowStep`` stub, already wrapped by the SDK's ``workflows.js`` so that a Python
``NonRetryableError`` raised in a step callback reaches the engine as non-retryable.

- A step without rollback options is called exactly as the SDK does:
  ``do(name, callback)`` or ``do(name, config, callback)``.
- A step with rollback options adds the options object the engine takes as last argument:
  ``do(name, [config], callback, {rollback, rollbackConfig})``. The options must be a plain JS
  object (a Python dict fails with ``DataCloneError``); the handler is a ``create_proxy``'d
  Python callable wrapped with the SDK's JS ``wrapWorkflowStepCallback``, so that a
  ``NonRetryableError`` raised in a handler stops its retries too.
- ``do`` calls reach the engine in the order ``step.do`` was called (the call form starts
  each step at call time, like JS), so concurrent steps keep their counts and rollback order.
- Errors coming back out of ``do`` follow the core's rule (`error_from_record`):
  ``NonRetryableError``, ``TypeError`` and ``ValueError`` keep their type, anything else
  becomes `StepError` with the original name and message.

Handler proxies are never destroyed: the engine calls them after ``run()`` has failed (and on
``terminate(rollback=True)``, possibly after the isolate replayed ``run()``), and a destroyed
proxy makes every attempt fail with ``Object has already been destroyed``. They are released
with the isolate.

The pure parts (error parsing, the rollback context, configs and delay functions) take plain
Python values and run under CPython; JS values are converted by the backend and
`rollback_argument`, through the SDK's ``workers.rpc``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._backend import RollbackOptions, StepBackend, StepCall
from ._config import StepConfig
from ._context import RollbackContext, StepContext
from ._durations import Duration
from ._errors import NonRetryableError, StepError
from ._records import ErrorRecord, error_from_record

_TRACEBACK_LAST_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$", re.S)

_workflows_js: Any = None  # the SDK's workflows.js module, imported once per isolate


def _ffi() -> tuple[Any, Any]:
    """``(pyodide.ffi, js)``: imported lazily so that CPython never needs them."""
    return importlib.import_module("pyodide.ffi"), importlib.import_module("js")


def _rpc() -> Any:
    """The SDK's ``workers.rpc`` (``python_to_rpc`` / ``python_from_rpc``)."""
    return importlib.import_module("workers.rpc")


async def _workflows_js_module() -> Any:
    """The SDK's ``workflows.js`` (for ``wrapWorkflowStepCallback``)."""
    global _workflows_js
    if _workflows_js is None:
        entrypoints = importlib.import_module("workers.entrypoints")
        module = getattr(entrypoints, "_workflows_js_module", None)
        if module is None:
            utils = importlib.import_module("workers.utils")
            module = await utils.import_sdk_javascript_module_async("workflows.js")
        _workflows_js = module
    return _workflows_js


# -- errors ----------------------------------------------------------------------------------


def parse_js_error(name: str | None, message: str | None) -> ErrorRecord:
    """The record of the error behind a JS error's name and message.

    A Python exception that crossed into JS is a ``PythonError`` (or a plain ``Error`` after
    an RPC hop) whose message is the formatted traceback; its last line,
    ``<qualified.Type>: <message>``, names the original error. A `StepError` raised by this
    backend and left uncaught in ``run()`` is unwrapped to the error it stands for.
    """
    name = name or "Error"
    message = message or ""
    text = message
    if text.startswith("PythonError: "):
        text = text[len("PythonError: ") :]
    from_python = name == "PythonError" or message.startswith("PythonError")
    if from_python or "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        match = _TRACEBACK_LAST_LINE.match(lines[-1].strip()) if lines else None
        if match is not None:
            name = match.group("type").rsplit(".", 1)[-1]
            message = match.group("message") or ""
            if name == "StepError":
                inner = _TRACEBACK_LAST_LINE.match(message)
                if inner is not None and inner.group("message") is not None:
                    name, message = inner.group("type").rsplit(".", 1)[-1], inner.group("message")
            return ErrorRecord(name, message)
    if message.startswith("NonRetryableError: "):
        return ErrorRecord("NonRetryableError", message[len("NonRetryableError: ") :])
    return ErrorRecord(name, message)


def error_from_js(exc: Any) -> Exception:
    """A JS error (a ``JsException`` or a JS ``Error`` proxy) as the core's error rule says.

    Only ``exc.name`` and ``exc.message`` are read, so any object with those will do.
    """
    if isinstance(exc, NonRetryableError | StepError):
        return exc
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if not isinstance(name, str):
        name = None
    if not isinstance(message, str):
        message = str(exc) if exc is not None else ""
    return error_from_record(parse_js_error(name, message))


@contextmanager
def plain_non_retryable() -> Iterator[None]:
    """Re-raise a `NonRetryableError` subclass (or one given another ``name``) as the class
    itself: the SDK's ``workflows.js`` recognises the Python error by its type name only."""
    try:
        yield
    except NonRetryableError as exc:
        if type(exc) is NonRetryableError:
            raise
        raise NonRetryableError(str(exc)) from exc


# -- durations and configs -------------------------------------------------------------------


def _plain_duration(value: Duration) -> str | int | float:
    if isinstance(value, timedelta):
        return value.total_seconds() * 1000
    return value


def _same(value: Any) -> Any:
    return value


def _delay_adapter(fn: Callable[..., Any], to_py: Callable[[Any], Any] = _same) -> Callable[[Any], Any]:
    """``fn`` (a retry delay function) as the engine calls it: async, durations in plain form.

    ``to_py`` converts the engine's ``{ctx, error}`` argument (JS) into Python first.
    """

    async def delay(js_arg: Any) -> Any:
        arg = to_py(js_arg)
        result = fn(arg if isinstance(arg, Mapping) else {"value": arg})
        if inspect.isawaitable(result):
            result = await result
        return _plain_duration(result)

    return delay


def plain_config(config: StepConfig, to_py: Callable[[Any], Any] = _same) -> dict[str, Any]:
    """``config`` as the engine takes it, before the JS conversion: durations in milliseconds
    or strings, a delay function wrapped by `_delay_adapter` (given ``to_py``)."""
    raw = config.to_js()
    if config.retries is not None and callable(config.retries.delay):
        raw["retries"]["delay"] = _delay_adapter(config.retries.delay, to_py)
    return raw


def _config_to_js(config: StepConfig) -> Any:
    rpc = _rpc()
    return rpc.python_to_rpc(plain_config(config, rpc.python_from_rpc))


# -- the backend -----------------------------------------------------------------------------


class PyodideStepBackend(StepBackend):
    """Executes steps on Cloudflare's Workflows engine.

    Args:
        step: the ``step`` the runtime passes to ``run()``: the official SDK's step wrapper,
            or the engine's JS step stub itself.
    """

    def __init__(self, step: Any) -> None:
        self._sdk_step = step if hasattr(step, "_js_step") else None
        self._js_step = step._js_step if self._sdk_step is not None else step
        self._handlers: list[Any] = []  # create_proxy'd rollback handlers, kept for the run
        # Calls reach the engine in the order they were made (the engine counts and orders
        # rollbacks by it), although building rollback options may await the first time.
        self._issuing = asyncio.Lock()

    # -- step.do ---------------------------------------------------------------------------

    async def do(self, call: StepCall) -> Any:
        rpc = _rpc()

        async def callback(js_ctx: Any = None) -> Any:
            ctx = StepContext(rpc.python_from_rpc(js_ctx) or {})
            with plain_non_retryable():
                return rpc.python_to_rpc(await call.callback(ctx))

        async with self._issuing:
            args: list[Any] = [call.name]
            if call.config is not None:
                args.append(_config_to_js(call.config))
            args.append(callback)
            if call.rollback is not None:
                args.append(await self._rollback_options(call.name, call.rollback))
            pending = self._js_step.do(*args)
        try:
            result = await pending
        except Exception as exc:
            raise error_from_js(exc) from exc
        return rpc.python_from_rpc(result)

    async def _rollback_options(self, step_name: str, options: RollbackOptions) -> Any:
        ffi, js = _ffi()
        handler = options.handler

        async def run_handler(js_arg: Any) -> None:
            with plain_non_retryable():
                await handler(rollback_context(rollback_argument(js_arg), step_name))

        proxy = ffi.create_proxy(run_handler)
        self._handlers.append(proxy)
        wrapped = (await _workflows_js_module()).wrapWorkflowStepCallback(proxy)
        entries: dict[str, Any] = {"rollback": wrapped}
        if options.config is not None:
            entries["rollbackConfig"] = _config_to_js(options.config)
        return ffi.to_js(entries, dict_converter=js.Object.fromEntries)

    # -- sleeps and events -----------------------------------------------------------------

    async def sleep(self, name: str, duration: Duration) -> None:
        owner = self._sdk_step if self._sdk_step is not None else self._js_step
        await owner.sleep(name, _plain_duration(duration))

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        if self._sdk_step is not None:
            await self._sdk_step.sleep_until(name, when)
        else:
            await self._js_step.sleepUntil(name, _rpc().python_to_rpc(when))

    async def wait_for_event(self, name: str, event_type: str, timeout: Duration) -> dict[str, Any]:
        try:
            if self._sdk_step is not None:
                result = await self._sdk_step.wait_for_event(
                    name, event_type, timeout=_plain_duration(timeout)
                )
            else:
                ffi, js = _ffi()
                options = ffi.to_js(
                    {"type": event_type, "timeout": _plain_duration(timeout)},
                    dict_converter=js.Object.fromEntries,
                )
                result = _rpc().python_from_rpc(await self._js_step.waitForEvent(name, options))
        except Exception as exc:
            if type(exc).__name__ == "JsException":
                raise error_from_js(exc) from exc
            raise
        return dict(result) if isinstance(result, Mapping) else {"payload": result}


@dataclass(frozen=True)
class RollbackArgument:
    """The engine's ``{ctx, output, error, stepName}`` with ``ctx`` and ``output`` in Python.

    ``error`` stays what the engine gave (a JS error, read through ``.name``/``.message``);
    ``label`` is ``stepName`` (``"<name>-<count>"``) when the engine gave one.
    """

    output: Any = None
    ctx: Any = None
    error: Any = None
    label: Any = None


def rollback_argument(js_arg: Any) -> RollbackArgument:
    """Convert the engine's JS argument of a rollback handler (the one JS step of it)."""
    rpc = _rpc()
    return RollbackArgument(
        output=rpc.python_from_rpc(getattr(js_arg, "output", None)),
        ctx=rpc.python_from_rpc(getattr(js_arg, "ctx", None)),
        error=getattr(js_arg, "error", None),
        label=getattr(js_arg, "stepName", None),
    )


def rollback_context(arg: RollbackArgument, step_name: str) -> RollbackContext[Any]:
    """The `RollbackContext` for a converted rollback argument of step ``step_name``."""
    raw_ctx = arg.ctx
    ctx = StepContext(raw_ctx) if isinstance(raw_ctx, Mapping) else StepContext()
    error: BaseException = (
        error_from_js(arg.error) if arg.error is not None else StepError("", name="Error")
    )
    label = arg.label
    if not isinstance(label, str):
        label = f"{ctx['step']['name']}-{ctx['step']['count']}" if "step" in ctx else step_name
    return RollbackContext(output=arg.output, error=error, ctx=ctx, step_name=label)
