"""`WorkflowStep`: the ``step`` object ``run()`` receives, with rollback options on ``step.do``.

It mirrors the official Python SDK (decorator form, implicit dependencies by parameter
name, a ``ctx`` parameter) and adds the JS call form and rollback options. Every call is
validated here and handed to a `StepBackend`.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from types import CoroutineType, FunctionType
from typing import Any, Generic, TypeVar, overload

from ._backend import RollbackHandler, RollbackOptions, StepBackend, StepCall
from ._config import StepConfig, parse_step_config
from ._context import RollbackContext, StepContext
from ._durations import Duration
from ._eager import start_now
from ._errors import InvalidStepConfigError

T = TypeVar("T")
ConfigLike = StepConfig | Mapping[str, Any] | None
UserRollback = (Callable[[RollbackContext[Any]], Awaitable[None] | None]
                | Callable[[], Awaitable[None] | None])
"""A rollback handler, sync or async, taking the `RollbackContext` or no argument."""

MAX_STEP_NAME = 256
_CONTROL = re.compile(r"[\x00-\x1f]")


def validate_step_name(name: object) -> str:
    """Return ``name`` if Cloudflare accepts it as a step name, else raise."""
    if not isinstance(name, str):
        raise InvalidStepConfigError(f"Step name must be a string, got {type(name).__name__}")
    if len(name) > MAX_STEP_NAME or _CONTROL.search(name):
        raise InvalidStepConfigError(
            f'Step name "{name}" exceeds max length ({MAX_STEP_NAME} chars) or invalid '
            "characters found"
        )
    return name


def make_rollback_options(
    name: str, rollback: object, rollback_config: ConfigLike
) -> RollbackOptions | None:
    """Validate a handler and its config as the engine does; ``None`` if there is no handler."""
    if rollback is None:
        if rollback_config is not None:
            raise InvalidStepConfigError(
                f'Rollback for "{name}" must be a function (rollback_config was given '
                "without a rollback handler)"
            )
        return None
    if not callable(rollback):
        if isinstance(rollback, Mapping) and ("rollback" in rollback or "rollbackConfig" in rollback):
            raise InvalidStepConfigError(
                f'Rollback for "{name}" must be a function, not JS\'s options object: in Python '
                f"the handler and its config are two keywords, "
                f"{_python_rollback_form(rollback)}")
        raise InvalidStepConfigError(f'Rollback for "{name}" must be a function')
    config = parse_step_config(rollback_config, step_name=name, rollback=True)
    return RollbackOptions(handler=_as_async_handler(name, rollback), config=config)


def _takes_the_context(name: str, fn: Callable[..., Any]) -> bool:
    """Whether handler ``fn`` is given the `RollbackContext` (it can take one positional
    argument) or called with none; refuse any other signature now, naming step ``name``."""
    arity = _plain_arity(fn)
    if arity is not None:
        required, takes_one, kw_required = arity
        if kw_required == 0 and required <= 1 and (takes_one or required == 0):
            return takes_one
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # no signature to read (some builtins): pass the context, as JS does
    for args in ((None,), ()):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return bool(args)
    raise InvalidStepConfigError(
        f'Rollback for "{name}" must take one argument (the RollbackContext) or none; '
        f"{getattr(fn, '__qualname__', fn)!s}{signature} takes neither"
    )


def _as_async_handler(name: str, fn: Callable[..., Any]) -> RollbackHandler:
    return _Handler(fn, _takes_the_context(name, fn))


class _Handler:
    """A user's rollback handler as the engine calls every one: with the context, awaited.

    One small object, not a closure: an instance keeps each step's handler until it ends, and
    a closure is four objects for the garbage collector to walk (25,000 steps may have one).
    """

    __slots__ = ("_fn", "_pass_rb")

    def __init__(self, fn: Callable[..., Any], pass_rb: bool) -> None:
        self._fn = fn
        self._pass_rb = pass_rb

    async def __call__(self, rb: RollbackContext[Any]) -> None:
        await (_call(self._fn, rb) if self._pass_rb else _call(self._fn))

    def __repr__(self) -> str:
        return f"<rollback handler {getattr(self._fn, '__qualname__', self._fn)!s}>"


def _plain_arity(fn: Callable[..., Any]) -> tuple[int, bool, int] | None:
    """For a plain function (read from its code object, far cheaper than a signature):
    ``(required positional, accepts a positional, required keyword-only)``; else ``None``."""
    code = getattr(fn, "__code__", None)
    if not inspect.isfunction(fn) or code is None:
        return None
    required = code.co_argcount - len(fn.__defaults__ or ())
    accepts_one = code.co_argcount >= 1 or _has_varargs(fn)
    return required, accepts_one, code.co_kwonlyargcount - len(fn.__kwdefaults__ or {})


def _has_varargs(fn: Callable[..., Any]) -> bool:
    return bool(fn.__code__.co_flags & inspect.CO_VARARGS)


_WANTS_CTX: dict[tuple[Any, int], bool] = {}
"""`_wants_ctx` of plain functions by code object and number of defaults (a loop's lambdas
share both)."""


def _wants_ctx(fn: Callable[..., Any]) -> bool:
    """Whether a call-form callback takes the ctx: it has a required positional parameter.

    Parameters with defaults (``lambda n=name: ...``) are left alone.
    """
    if type(fn) is FunctionType:
        key = (fn.__code__, len(fn.__defaults__ or ()))
        known = _WANTS_CTX.get(key)
        if known is None:
            known = _wants_ctx_uncached(fn)
            if len(_WANTS_CTX) < 4096:
                _WANTS_CTX[key] = known
        return known
    return _wants_ctx_uncached(fn)


def _wants_ctx_uncached(fn: Callable[..., Any]) -> bool:
    arity = _plain_arity(fn)
    if arity is not None:
        required, _, _ = arity
        return required > 0 or _has_varargs(fn)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind == p.VAR_POSITIONAL
        or (p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)
        for p in params
    )


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if _awaitable(result):
        result = await result
    return result


_PLAIN_RESULTS = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})
"""What a callback commonly returns that is never awaitable."""


def _awaitable(result: Any) -> bool:
    """`inspect.isawaitable`, with the common cases first (this is on every step's path)."""
    kind = type(result)
    return kind is CoroutineType or (kind not in _PLAIN_RESULTS and inspect.isawaitable(result))


# -- JS-shaped calls: say what the Python form is ------------------------------------

_JS_STEP_KEYWORDS = {
    "rollbackConfig": "rollback_config",
    "retries": 'config={"retries": ...}',
    "timeout": 'config={"timeout": ...}',
    "sensitive": 'config={"sensitive": "output"}',
}
"""Keywords a port may carry over from JS, and what ``step.do`` takes instead."""

_JS_STEP_METHODS = {
    "waitForEvent": 'step.wait_for_event(name, event_type, timeout="24 hours")',
    "sleepUntil": "step.sleep_until(name, timestamp)",
    "withRollback": "step.do(name, callback, rollback=handler)",
    "with_rollback": "step.do(name, callback, rollback=handler)",
    "rollbackAll": "nothing: the engine runs the handlers when the instance fails",
    "rollback_all": "nothing: the engine runs the handlers when the instance fails",
}
"""Attributes a port may look for on ``step``, and the Python form (the last four come from
Cloudflare's closed rollback proposal, which never shipped)."""


def _quoted(name: object) -> str:
    return f'"{name}"' if isinstance(name, str) else repr(name)


def _fn_name(fn: object, fallback: str) -> str:
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else fallback


def _is_js_options(value: object) -> bool:
    """Whether ``value`` looks like JS's rollback options object ``{rollback, rollbackConfig}``."""
    return isinstance(value, Mapping) and bool({"rollback", "rollbackConfig"} & set(value))


def _python_rollback_form(options: Mapping[str, Any]) -> str:
    handler = _fn_name(options.get("rollback"), "handler")
    form = f"rollback={handler}"
    if options.get("rollbackConfig") is not None or options.get("rollback_config") is not None:
        form += ", rollback_config={...}"
    return form


def _python_do_form(name: object, callback: object, config: bool, options: object) -> str:
    """``await step.do(...)`` as Python writes the call a port gave in JS's shape."""
    parts = [_quoted(name), _fn_name(callback, "callback")]
    if config:
        parts.append("config={...}")
    if isinstance(options, Mapping):
        parts.append(_python_rollback_form(options))
    return f"await step.do({', '.join(parts)})"


def _js_shaped_do_error(name: object, callback: object, extra: tuple[Any, ...]) -> TypeError:
    """The error for ``step.do`` given more than a name and a callback by position."""
    shown = ", ".join([_quoted(name), *(_shown_arg(a) for a in (callback, *extra))])
    if isinstance(callback, Mapping) and extra and callable(extra[0]):
        # JS's step.do(name, config, callback[, {rollback, rollbackConfig}])
        options = extra[1] if len(extra) > 1 else None
        return TypeError(
            f"step.do({shown}) is JS's argument order (name, config, callback, options). In "
            f"Python the callback comes second and the rest are keywords: "
            f"{_python_do_form(name, extra[0], True, options)}")
    if callable(callback) and len(extra) == 1 and _is_js_options(extra[0]):
        return TypeError(
            f"step.do({shown}) passes JS's rollback options object. In Python the handler "
            f"and its config are keywords: {_python_do_form(name, callback, False, extra[0])}")
    if callable(callback) and len(extra) == 1 and isinstance(extra[0], Mapping):
        return TypeError(
            f"step.do({shown}): the config is a keyword in Python: "
            f"{_python_do_form(name, callback, True, None)}")
    return TypeError(
        f"step.do() takes a name and a callback by position, and the rest as keywords, "
        f"got step.do({shown}): await step.do(name, callback, config={{...}}, "
        f"rollback=handler, rollback_config={{...}})")


def _shown_arg(value: object) -> str:
    if isinstance(value, Mapping):
        return "{...}"
    if callable(value):
        return _fn_name(value, "callback")
    return repr(value)


def _config_as_callback_error(name: str, config: Mapping[str, Any]) -> InvalidStepConfigError:
    """The error for ``step.do(name, {config})``: a config where the callback goes."""
    if _is_js_options(config):
        form = _python_rollback_form(config)
        return InvalidStepConfigError(
            f'Step "{name}" requires a callback function, got JS\'s rollback options object '
            f"in its place. In Python: await step.do({_quoted(name)}, callback, {form}), or "
            f"decorate: @step.do({_quoted(name)}, {form})")
    return InvalidStepConfigError(
        f'Step "{name}" requires a callback function, got a config in its place. The config '
        f"is a keyword in Python: await step.do({_quoted(name)}, callback, config={{...}}), "
        f"or decorate: @step.do({_quoted(name)}, config={{...}})")


def _unknown_do_keywords(keywords: Mapping[str, Any]) -> TypeError:
    hints = [f"{k}= is {_JS_STEP_KEYWORDS[k]}" for k in keywords if k in _JS_STEP_KEYWORDS]
    names = ", ".join(repr(k) for k in keywords)
    hint = f" ({'; '.join(hints)})" if hints else ""
    return TypeError(
        f"step.do() got unexpected keyword argument(s) {names}{hint}; it takes "
        "concurrent=, config=, rollback= and rollback_config=")


def _js_shaped_wait_error(name: object, event_type: object, keywords: Mapping[str, Any],
                          timeout: object) -> TypeError:
    """The error for ``wait_for_event`` given JS's ``{type, timeout}`` options (or no type)."""
    options: Mapping[str, Any] = event_type if isinstance(event_type, Mapping) else keywords
    kind = options.get("type", "event-type")
    timeout = options.get("timeout", timeout)
    form = f"step.wait_for_event({_quoted(name)}, {_quoted(kind)}"
    if timeout is not None and timeout != "24 hours":
        form += f", timeout={_quoted(timeout)}"
    if isinstance(event_type, Mapping):
        shape = "JS's options object {type, timeout}"
    elif keywords:
        shape = f"keyword argument(s) {', '.join(repr(k) for k in keywords)}"
    else:
        shape = "no event type"
    return TypeError(
        f"step.wait_for_event() got {shape}. In Python the event type is the second "
        f"positional argument and the timeout a keyword: await {form})")


class _StepDecorator:
    """What ``step.do(...)`` without a callback returns: decorate a function with it.

    Awaiting it, as a port of JS's ``await step.do(name, config, callback)`` may, says so.
    """

    __slots__ = ("_decorate", "_name")

    def __init__(self, decorate: Callable[[Callable[..., Any]], StepFunction[Any]],
                 name: str | None) -> None:
        self._decorate = decorate
        self._name = name

    def __call__(self, func: Callable[..., Any]) -> StepFunction[Any]:
        return self._decorate(func)

    def __await__(self) -> Any:
        name = "name" if self._name is None else _quoted(self._name)
        raise TypeError(
            f"step.do({name}, ...) was given no callback, so it is the decorator form and "
            f"cannot be awaited: pass the callback, await step.do({name}, callback, "
            f"config={{...}}), or decorate a function with @step.do({name}, ...) and await "
            "that function")


class StepFunction(Generic[T]):
    """A function decorated with ``@step.do(...)``: await it to run the step.

    Attach a rollback handler before it runs with ``@fn.rollback`` (optionally
    ``@fn.rollback(config={...})``).
    """

    def __init__(
        self,
        step: WorkflowStep,
        func: Callable[..., Any],
        name: str,
        *,
        concurrent: bool,
        config: StepConfig | None,
        rollback: RollbackOptions | None,
        rollback_config: StepConfig | None = None,
    ) -> None:
        self._step = step
        self._func = func
        self._step_name = name
        self._concurrent = concurrent
        self._config = config
        self._rollback = rollback
        # rollback_config may come before the handler, which `@fn.rollback` attaches.
        self._pending_rollback_config = rollback_config if rollback is None else None
        self._started = False  # set when the step is handed to the backend
        self.__name__ = getattr(func, "__name__", name)
        self.__doc__ = func.__doc__

    @property
    def step_name(self) -> str:
        """The name the step runs under."""
        return self._step_name

    @overload
    def rollback(self, handler: UserRollback, /) -> UserRollback: ...
    @overload
    def rollback(
        self, handler: None = None, /, *, config: ConfigLike = None
    ) -> Callable[[UserRollback], UserRollback]: ...

    def rollback(
        self, handler: UserRollback | None = None, /, *, config: ConfigLike = None
    ) -> UserRollback | Callable[[UserRollback], UserRollback]:
        """Register ``handler`` as this step's rollback (decorator)."""

        def attach(fn: UserRollback) -> UserRollback:
            if self._started:
                raise InvalidStepConfigError(
                    f'Step "{self._step_name}" has already run: attach its rollback handler '
                    f"(@{self.__name__}.rollback) before awaiting the step"
                )
            options = make_rollback_options(
                self._step_name, fn, config if config is not None else self._pending_rollback_config
            )
            if self._rollback is not None:
                raise InvalidStepConfigError(
                    f'Step "{self._step_name}" already has a rollback handler'
                )
            self._rollback = options
            return fn

        return attach(handler) if handler is not None else attach

    def __call__(self) -> Awaitable[T]:
        return self._run()

    async def _run(self) -> T:
        if self._rollback is None and self._pending_rollback_config is not None:
            raise InvalidStepConfigError(
                f'Rollback for "{self._step_name}" must be a function (rollback_config was '
                f"given; attach the handler with @{self.__name__}.rollback)"
            )
        step = self._step
        deps = step._dependencies_of(self._func)
        if self._concurrent:
            results = await asyncio.gather(*(step._resolve(d) for d in deps))
        else:
            results = [await step._resolve(d) for d in deps]
        func = self._func

        async def callback(ctx: StepContext) -> Any:
            args = [ctx if r is CTX_PARAMETER else r for r in results]
            return await _call(func, *args)

        call = StepCall(self._step_name, callback, self._config, self._rollback)
        self._started = True
        task = asyncio.ensure_future(step._backend.do(call))
        step._in_flight[self] = task
        try:
            result: T = await task
            step._memo[self] = result
        finally:
            step._in_flight.pop(self, None)
        return result


CTX_PARAMETER = object()


class WorkflowStep:
    """The ``step`` argument of ``run(event, step)``.

    Example:
        >>> async def run(self, event, step):          # doctest: +SKIP
        ...     @step.do("charge", rollback=refund)
        ...     async def charge():
        ...         return {"charge_id": "ch_1"}
        ...     await charge()
        ...     await step.do("email", send_receipt)      # JS-style call form
    """

    def __init__(self, backend: StepBackend) -> None:
        self._backend = backend
        self.step_closures: dict[str, StepFunction[Any]] = {}
        self._memo: dict[StepFunction[Any], Any] = {}
        self._in_flight: dict[StepFunction[Any], asyncio.Future[Any]] = {}

    @property
    def backend(self) -> StepBackend:
        """The backend executing this run's steps."""
        return self._backend

    @overload
    def do(
        self,
        name: str | None = None,
        callback: None = None,
        *,
        concurrent: bool = False,
        config: ConfigLike = None,
        rollback: UserRollback | None = None,
        rollback_config: ConfigLike = None,
    ) -> Callable[[Callable[..., Any]], StepFunction[Any]]: ...
    @overload
    def do(
        self,
        name: str,
        callback: Callable[..., Any],
        *,
        concurrent: bool = False,
        config: ConfigLike = None,
        rollback: UserRollback | None = None,
        rollback_config: ConfigLike = None,
    ) -> asyncio.Future[Any]: ...

    def do(
        self,
        name: str | Callable[..., Any] | None = None,
        callback: Callable[..., Any] | None = None,
        *js_args: Any,
        concurrent: bool = False,
        config: ConfigLike = None,
        rollback: UserRollback | None = None,
        rollback_config: ConfigLike = None,
        **js_keywords: Any,
    ) -> Callable[[Callable[..., Any]], StepFunction[Any]] | StepFunction[Any] | asyncio.Future[Any]:
        """Declare a step (decorator) or run one (call form).

        Decorator: ``@step.do(name=None, *, concurrent=False, config=None, rollback=None,
        rollback_config=None)`` returns a `StepFunction`; awaiting it runs the step.
        Call form: ``await step.do(name, callback, *, config=None, rollback=None,
        rollback_config=None)`` runs ``callback`` (given the ctx if it takes an argument).
        As in JS, the step starts when called: the returned task can be awaited later,
        gathered (``Promise.all``) or raced (``asyncio.wait``, ``Promise.race``).

        JS's shapes (``step.do(name, config, callback)``, a trailing ``{rollback,
        rollbackConfig}`` object, camelCase keywords) are refused with the Python form.

        Raises:
            InvalidStepConfigError: a bad name, config, rollback or rollback_config.
            TypeError: arguments in JS's shape, or unknown keywords.
        """
        if js_args:
            raise _js_shaped_do_error(name, callback, js_args)
        if js_keywords:
            raise _unknown_do_keywords(js_keywords)
        if callable(name) and callback is None:
            return self.do()(name)
        if isinstance(callback, Mapping):
            raise _config_as_callback_error(str(name), callback)
        if callback is not None:
            if not isinstance(name, str):
                raise InvalidStepConfigError("step.do(name, callback): name must be a string")
            return self._do_now(name, callback, config, rollback, rollback_config)

        def decorator(func: Callable[..., Any]) -> StepFunction[Any]:
            step_name = validate_step_name(func.__name__ if name is None else name)
            cfg = parse_step_config(config, step_name=step_name)
            rb_cfg = parse_step_config(rollback_config, step_name=step_name, rollback=True)
            options = (make_rollback_options(step_name, rollback, rb_cfg)
                       if rollback is not None else None)
            fn: StepFunction[Any] = StepFunction(
                self, func, step_name, concurrent=concurrent, config=cfg, rollback=options,
                rollback_config=rb_cfg,
            )
            self.step_closures[step_name] = fn
            return fn

        return _StepDecorator(decorator, name if isinstance(name, str) else None)

    def _do_now(
        self,
        name: str,
        callback: Callable[..., Any],
        config: ConfigLike,
        rollback: UserRollback | None,
        rollback_config: ConfigLike,
    ) -> asyncio.Future[Any]:
        validate_step_name(name)
        if not callable(callback):
            raise InvalidStepConfigError(f'Step "{name}" requires a callback function')
        cfg = parse_step_config(config, step_name=name)
        options = make_rollback_options(name, rollback, rollback_config)
        pass_ctx = _wants_ctx(callback)

        async def body(ctx: StepContext) -> Any:
            result = callback(ctx) if pass_ctx else callback()
            if _awaitable(result):
                result = await result
            return result

        # Started now, as JS's step.do starts at call time: the step runs up to its first
        # suspension before this returns, so counts and the rollback order follow the calls.
        # The future may be awaited any number of times, gathered (Promise.all) or raced
        # (Promise.race); a failure nobody awaits is not reported as lost (it is in the
        # engine's log, and as for a JS promise left alone, only an awaited failure fails run()).
        return start_now(self._backend.do(StepCall(name, body, cfg, options)))

    def sleep(self, name: str, duration: Duration) -> Awaitable[None]:
        """Sleep durably for ``duration`` (ms, timedelta, or ``"3 hours"``)."""
        return self._backend.sleep(validate_step_name(name), duration)

    def sleep_until(self, name: str, timestamp: datetime | int | float) -> Awaitable[None]:
        """Sleep durably until ``timestamp`` (a datetime or epoch milliseconds)."""
        return self._backend.sleep_until(validate_step_name(name), timestamp)

    async def wait_for_event(
        self, name: str, event_type: str | None = None, /, timeout: Duration = "24 hours",
        **js_options: Any,
    ) -> dict[str, Any]:
        """Wait for an event sent with ``instance.send_event(type=event_type, ...)``.

        Raises:
            TypeError: JS's ``{type, timeout}`` options given instead (says the Python form).
        """
        if isinstance(event_type, Mapping) or js_options or event_type is None:
            raise _js_shaped_wait_error(name, event_type, js_options, timeout)
        return await self._backend.wait_for_event(validate_step_name(name), event_type, timeout)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: a JS (or closed-proposal) name gets its form.
        hint = _JS_STEP_METHODS.get(name)
        if hint is None:
            raise AttributeError(f"'WorkflowStep' object has no attribute {name!r}")
        raise AttributeError(f"'WorkflowStep' object has no attribute {name!r}: in Python it is "
                             f"{hint}")

    # -- implicit dependencies, as in the official SDK ---------------------------------

    def _dependencies_of(self, func: Callable[..., Any]) -> list[Any]:
        deps: list[Any] = []
        for p in inspect.signature(func).parameters.values():
            if p.name in self.step_closures:
                deps.append(self.step_closures[p.name])
            elif p.name == "ctx":
                deps.append(CTX_PARAMETER)
            else:
                raise TypeError(f"Received unexpected parameter {p.name}")
        return deps

    async def _resolve(self, dep: Any) -> Any:
        if dep is CTX_PARAMETER:
            return CTX_PARAMETER
        if dep in self._memo:
            return self._memo[dep]
        if dep in self._in_flight:
            return await self._in_flight[dep]
        return await dep()
