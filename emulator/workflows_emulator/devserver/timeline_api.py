"""What the timeline page needs beside the instance API, and time travel on a running dev server.

Two JSON routes of the dev server, in `InstanceApi`'s envelope (``{"success", "result"}`` or
``{"success": false, "errors"}``); changes need a local ``Origin`` like the rest of the API:

    GET  /__workflows/api/time                         {"virtual", "now"}: the engine's clock
    POST /__workflows/api/time/advance                 {"by": "2h"} -> {"virtual", "now", "advanced_ms"}
    GET  /__workflows/api/timeline/workflows/<name>/instances/<id|latest>

The timeline document is the instance API's describe document plus what a timeline draws
and describe leaves out: the clock (``"clock"``: on the virtual clock the browser's own time
is not the engine's), each step's resolved ``config`` (retry policy, a wait's event type and
timeout) and each attempt's ``retry_delay_ms`` (the delay before the next attempt).

Advancing needs ``workflows-emulator dev --virtual-clock``; on the real clock it is refused
with 409 and that advice. The virtual time reached is kept in the state directory
(`CLOCK_FILE`), so a restarted dev server goes on from there (`catch_up`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from workflows_saga.backend import duration_ms

from ..project import Runtime
from ..values import shown
from ..workers_shim.http import Request
from .api_views import API_PREFIX, ApiResponse, InstanceApi
from .http_transport import HttpResponse

TIME_PREFIX = API_PREFIX + "/time"
TIMELINE_PREFIX = API_PREFIX + "/timeline"
CLOCK_FILE = "virtual-clock.json"
"""Where a ``--virtual-clock`` dev server keeps its time across restarts, in the state dir."""
REAL_CLOCK = ("this dev server runs on the real clock, so time cannot be advanced: restart it "
              "with `workflows-emulator dev --virtual-clock` to jump over sleeps, retry delays "
              "and event timeouts")
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_SHORT_MS = {"": 1, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
             "w": 7 * 86_400_000}

RouteHandler = Callable[[Request, str], Awaitable[HttpResponse]]


MAX_ADVANCE_MS = 10 * 365 * 86_400_000
"""The longest single jump (10 years): time never goes back, and it is saved, so a typo must
not leave the state directory stuck centuries ahead."""


def advance_ms(value: object) -> int:
    """``value`` in whole milliseconds: ``"2h"``/``"90s"``/``"15m"``/``"1d"``/``"1500"``, or
    any duration a sleep takes (``"3 hours"``, a number of ms), at most 10 years; else
    `ValueError` saying what is accepted."""
    if isinstance(value, str) and (match := _SHORT.match(value)):
        ms = int(float(match.group(1)) * _SHORT_MS[(match.group(2) or "").lower()])
    else:
        try:
            ms = duration_ms(value, what="duration")
        except ValueError:
            raise ValueError(f"invalid duration {value!r}: use e.g. 2h, 15m, 90s, 1d, 500ms, "
                             '"3 hours" (as step.sleep takes) or milliseconds') from None
    if ms > MAX_ADVANCE_MS:
        raise ValueError(f"{value!r} is more than 10 years: time only moves forward and is "
                         "kept in the state directory, so advance by at most 10 years at once")
    return ms


async def catch_up(rt: Runtime) -> float:
    """On the virtual clock, go back to where the last ``dev --virtual-clock`` on this state
    directory had advanced it (`CLOCK_FILE`); return the jump in ms.

    A virtual clock starts at the wall clock's time: without this, a restart would put time
    before the instances' own history and their timers hours away again.
    """
    clock = rt.emulator.clock
    try:
        saved = float(json.loads((rt.emulator.state_dir / CLOCK_FILE).read_text())["now"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0  # never advanced here (or unreadable): the wall clock's time is as good
    jump = saved - clock.now_ms()
    if not clock.virtual or jump <= 0:
        return 0.0
    await rt.emulator.advance(jump)
    return jump


def save_clock(rt: Runtime) -> None:
    """Remember the virtual clock's time in `CLOCK_FILE` for the next `catch_up`."""
    path = rt.emulator.state_dir / CLOCK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"now": rt.emulator.clock.now_ms()}))
    tmp.replace(path)


def clock_note(jump_ms: float) -> str:
    """The line the dev server prints at start on the virtual clock."""
    caught_up = (f" (moved {fmt_ms(jump_ms)} ahead, to where the last advance on this state "
                 "directory left it)" if jump_ms > 0 else "")
    return ("[workflows-emulator] Virtual clock" + caught_up + ": time stands still until "
            "`workflows-emulator time advance 2h` (or the page at /__workflows/) moves it")


def fmt_ms(ms: float) -> str:
    """``ms`` as the largest whole unit or two: ``3 h 10 min``, ``90 s``."""
    seconds = round(ms / 1000)
    parts = [f"{seconds // size % top} {unit}" for unit, size, top in
             (("d", 86_400, 1 << 62), ("h", 3600, 24), ("min", 60, 60), ("s", 1, 60))
             if seconds >= size and seconds // size % top]
    return " ".join(parts[:2]) or f"{ms:g} ms"


class TimelineApi:
    """The clock and timeline routes over one running project and its `InstanceApi`."""

    def __init__(self, api: InstanceApi) -> None:
        self.api = api
        self._advancing = asyncio.Lock()

    @property
    def rt(self) -> Runtime:
        return self.api.rt

    def routes(self) -> list[tuple[str, RouteHandler]]:
        """``(prefix, handler)`` pairs for the dev server's route table (JSON API routes)."""
        return [(TIME_PREFIX, self.time_route), (TIMELINE_PREFIX, self.timeline_route)]

    # -- time ----------------------------------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        """``{"virtual", "now"}``: which clock the engine runs on and its time (epoch ms)."""
        clock = self.rt.emulator.clock
        return {"virtual": clock.virtual, "now": clock.now_ms()}

    async def advance(self, body: Any) -> ApiResponse:
        """Move the virtual clock by ``body["by"]``; answer once the instances have settled."""
        if not self.rt.emulator.clock.virtual:
            return ApiResponse.failure(409, REAL_CLOCK)
        if not isinstance(body, dict) or set(body) != {"by"}:
            return ApiResponse.failure(400, 'the body must be {"by": duration}, e.g. '
                                            '{"by": "2h"} or {"by": "3 hours"}')
        try:
            ms = advance_ms(body["by"])
        except ValueError as exc:
            return ApiResponse.failure(400, str(exc))
        async with self._advancing:  # one jump at a time: each settles before the next
            await self.rt.emulator.advance(ms)
            save_clock(self.rt)
        return ApiResponse.success({**self.clock(), "advanced_ms": ms})

    async def time_route(self, request: Request, rel: str) -> HttpResponse:
        """``GET /time`` and ``POST /time/advance``."""
        path, method = rel.split("?", 1)[0].rstrip("/"), request.method.value
        if path == "":
            answer = (ApiResponse.success(self.clock()) if method in ("GET", "HEAD")
                      else _not_allowed(method, TIME_PREFIX, "GET, HEAD"))
        elif path == "/advance":
            answer = (await self.advance(_body(await request.bytes())) if method == "POST"
                      else _not_allowed(method, TIME_PREFIX + path, "POST"))
        else:
            answer = ApiResponse.failure(404, f"no API route {TIME_PREFIX}{path}; use "
                                              f"GET {TIME_PREFIX} or POST {TIME_PREFIX}/advance")
        return _json(answer)

    # -- timeline ------------------------------------------------------------------------------

    async def timeline_route(self, request: Request, rel: str) -> HttpResponse:
        """``GET /timeline/workflows/<name>/instances/<id>``: describe plus clock and configs."""
        if request.method.value not in ("GET", "HEAD"):
            return _json(_not_allowed(request.method.value, TIMELINE_PREFIX + rel, "GET, HEAD"))
        path = rel.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if len(parts) != 4 or parts[0] != "workflows" or parts[2] != "instances":
            return _json(ApiResponse.failure(
                404, f"no API route {TIMELINE_PREFIX}{path}; use "
                     f"{TIMELINE_PREFIX}/workflows/<name>/instances/<id>"))
        return _json(await self.timeline(parts[1], parts[3]))

    async def timeline(self, workflow: str, instance_id: str) -> ApiResponse:
        """The describe document of ``instance_id`` (raw path segments) with timeline details."""
        answer = await self.api.handle("GET", f"/workflows/{workflow}/instances/{instance_id}")
        if answer.status != 200:
            return answer
        doc: dict[str, Any] = answer.body["result"]
        inst = await self.rt.workflows[doc["workflow"]].get(doc["id"])
        rows = {_row_key(r.kind, r.name, r.count): r for r in inst.steps()}
        phase = doc.get("rollback_phase") or {}
        for entry in [*doc["steps"], *phase.get("steps", [])]:
            row = rows.get(_row_key(entry["type"], entry["name"], entry["count"]))
            entry["config"] = row.config if row is not None else None
            delays = {a.number: a.retry_delay_ms for a in row.attempt_log} if row else {}
            for attempt in entry["attempts"]:
                attempt["retry_delay_ms"] = delays.get(attempt["attempt"])
        doc["clock"] = self.clock()
        return ApiResponse.success(doc)


def _row_key(kind: str, name: str, count: int) -> tuple[str, str, int]:
    return kind, name, count


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None  # refused by the shape check with the shape it wants


def _not_allowed(method: str, path: str, allow: str) -> ApiResponse:
    return ApiResponse.failure(405, f"{method} is not allowed on {path}; use {allow}",
                               (("allow", allow),))


def _json(answer: ApiResponse) -> HttpResponse:
    return HttpResponse(answer.status, [("content-type", "application/json"), *answer.headers],
                        json.dumps(answer.body, default=shown).encode())
