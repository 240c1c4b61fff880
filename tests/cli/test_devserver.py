"""``workflows-emulator dev`` over real sockets: as a subprocess, and in-process for the HTTP layer."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from workflows_emulator.devserver import MAX_BODY, HttpLimits
from workflows_emulator.devserver import DevServer as InProcessServer
from workflows_emulator.devserver.local_only import exposure_warning, local_host, local_origin
from workflows_emulator.devserver.server import listen_error
from workflows_emulator.project import load_project, open_runtime
from workflows_emulator.state_lock import running_server

from .conftest import EXAMPLE, DevServer, http, run_cli


def test_fetch_starts_failing_transfer_and_api_shows_rollback(
        dev_server: Callable[[Path], DevServer]) -> None:
    server = dev_server(EXAMPLE)
    code, body = http("POST", server.base + "/transfers",
                      {"from": "alice", "to": "bob", "amount": 5000})
    assert code == 200
    instance_id = body["id"]
    d = server.wait_status("transfer", instance_id, {"errored"})
    assert d["rollback"] == {"outcome": "complete", "error": None}
    assert [s["step"] for s in d["rollback_phase"]["steps"]] == [
        "credit destination-1", "debit source-1", "reserve funds-1"]
    code, status = http("GET", f"{server.base}/transfers/{instance_id}")
    assert code == 200 and status["status"] == "errored"
    assert status["error"]["name"] == "NonRetryableError"
    code, missing = http("GET", server.base + "/other")
    assert code == 404 and missing == {"error": "try POST /transfers"}
    code, err = server.api("PATCH", f"/workflows/transfer/instances/{instance_id}",
                           {"action": "pause", "rollback": True})
    assert code == 400
    assert err["errors"][0]["message"] == "'rollback' is only valid when terminating."
    code, err = server.api("PATCH", f"/workflows/transfer/instances/{instance_id}",
                           {"action": "jump"})
    assert err["errors"][0]["message"] == (
        "Invalid action 'jump'. Must be one of: pause, resume, restart, terminate.")


def test_restart_keeps_instances_and_waiting_ones_resume(
        dev_server: Callable[[Path], DevServer], sdk_project: Path, state: Path) -> None:
    server = dev_server(sdk_project)
    code, body = http("POST", server.base + "/", b"order-7")
    assert code == 200 and body == {"id": "from-fetch", "greeting": "hi"}
    server.wait_status("approval", "from-fetch", {"waiting"})
    code, created = server.api("POST", "/workflows/errors/instances",
                               {"id": "e-1", "params": {"kind": "value"}})
    assert code == 200 and created["result"]["id"] == "e-1"
    server.wait_status("errors", "e-1", {"complete"})
    assert server.stop() == 0
    assert "Shutting down; instances are kept in" in server.output
    assert running_server(state) is None  # the lock went with the process

    again = dev_server(sdk_project)
    code, listed = again.api("GET", "/workflows/approval/instances")
    assert [(i["id"], i["status"]) for i in listed["result"]] == [("from-fetch", "waiting")]
    # the CLI finds the running server through the state dir, or with --local
    r = run_cli("workflows", "instances", "send-event", "approval", "from-fetch", "--type",
                "approved", "--payload", '{"by": "dave"}', "--local", "--port", str(again.port))
    assert r.code == 0, r.err
    done = again.wait_status("approval", "from-fetch", {"complete"})
    assert done["output"] == {"order": "order-7", "by": "dave", "attempt": 1}
    r = run_cli("workflows", "instances", "list", "errors", "--json", "--persist-to", str(state))
    assert r.code == 0, r.err
    assert [(i["id"], i["status"]) for i in r.json()] == [("e-1", "complete")]
    code, errors = again.api("GET", "/workflows/errors/instances/e-1")
    assert errors["result"]["output"] == {"caught": "ValueError", "message": "bad value"}
    assert again.stop(signal.SIGTERM) == 0


def test_second_server_on_same_state_is_refused(dev_server: Callable[[Path], DevServer],
                                                state: Path) -> None:
    server = dev_server(EXAMPLE)
    r = run_cli("dev", "--config", str(EXAMPLE), "--port", "0", "--persist-to", str(state))
    assert r.code == 1
    assert f"the state directory {state} is in use by pid {server.proc and server.proc.pid}" in r.err
    assert f"serving {server.base}" in r.err


def test_terminate_with_rollback_over_cli_local(dev_server: Callable[[Path], DevServer],
                                                sdk_project: Path) -> None:
    server = dev_server(sdk_project)
    r = run_cli("workflows", "trigger", "approval", '{"order": "x"}', "--id", "t-9", "--local",
                "--port", str(server.port))
    assert r.code == 0, r.err
    assert '🚀 Workflow instance "t-9" has been triggered successfully' in r.out
    server.wait_status("approval", "t-9", {"waiting"})
    r = run_cli("workflows", "instances", "terminate", "approval", "t-9", "--rollback",
                "--local", "--port", str(server.port))
    assert r.code == 0, r.err
    d = server.wait_status("approval", "t-9", {"terminated"})
    assert d["status"] == "terminated"
    r = run_cli("workflows", "instances", "describe", "approval", "t-9", "--local", "--port",
                str(server.port))
    assert "🚫 Terminated" in r.out


# -- the HTTP layer, in-process: a real server on 127.0.0.1 and real client sockets ------------

ECHO_ENTRY = '''
import json

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class Hold(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def keep():
            return event.payload

        params = await keep()
        await step.wait_for_event("go", "go", timeout="1 hour")
        return params


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        body = await request.bytes()
        seen = {"method": str(request.method), "url": request.url,
                "x_multi": request.headers.get_all("x-multi"), "body": body.decode("latin-1")}
        return Response(json.dumps(seen), status=201, headers=[
            ("content-type", "application/json"), ("set-cookie", "a=1"), ("set-cookie", "b=2")])
'''

ECHO_TOML = '''
name = "echo"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[[workflows]]
name = "hold"
binding = "HOLD"
class_name = "Hold"
'''


@pytest.fixture
def echo_project(tmp_path: Path) -> Path:
    root = tmp_path / "echo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "entry.py").write_text(ECHO_ENTRY)
    (root / "wrangler.toml").write_text(ECHO_TOML)
    return root / "wrangler.toml"


@contextlib.asynccontextmanager
async def serving(config: Path, state_dir: Path,
                  limits: HttpLimits | None = None) -> AsyncIterator[InProcess]:
    """The project's dev server on a free 127.0.0.1 port, stopped when the block ends."""
    async with open_runtime(load_project(config), state_dir, clock="real") as rt:
        server = InProcessServer(rt, "127.0.0.1", 0, limits)
        ready = asyncio.Event()
        task = asyncio.create_task(server.serve(lambda line: ready.set()))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield InProcess(server)
        finally:
            server.stop()
            await asyncio.wait_for(task, 10)


@dataclass
class InProcess:
    """A running in-process dev server and raw-socket calls to it."""

    server: InProcessServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def raw(self, data: bytes, timeout: float = 5) -> bytes:
        """Send ``data`` on a fresh connection; everything the server sends until it closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def call(self, method: str, path: str, body: bytes = b"",
                   headers: dict[str, str] | None = None) -> Raw:
        """One request (``connection: close``) with ``body``; the parsed answer."""
        headers = {"host": f"127.0.0.1:{self.port}", **(headers or {})}
        lines = [f"{method} {path} HTTP/1.1", "connection: close"]
        if body or method in ("POST", "PATCH", "PUT"):
            lines.append(f"content-length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return Raw.parse(await self.raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body))


@dataclass
class Raw:
    """An HTTP/1.1 answer as it came off the socket."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def parse(cls, data: bytes) -> Raw:
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [(k.strip().lower(), v.strip()) for k, v in (h.split(":", 1) for h in lines)]
        return cls(int(status_line.split(" ")[1]), headers, body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


API = "/__workflows/api"


async def test_chunked_create_keeps_id_and_params(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live:
        body = chunked(b'{"id": "c-1", ', b'"params": {"n": 1, ', b'"s": "x"}}')
        head = (f"POST {API}/workflows/hold/instances HTTP/1.1\r\nhost: 127.0.0.1:{live.port}\r\n"
                "transfer-encoding: chunked\r\nconnection: close\r\n\r\n").encode()
        answer = Raw.parse(await live.raw(head + body))
        assert answer.status == 200, answer.body
        assert answer.json()["result"]["id"] == "c-1"
        for _ in range(200):
            described = (await live.call("GET", f"{API}/workflows/hold/instances/c-1")).json()
            if described["result"]["status"] == "waiting":
                break
            await asyncio.sleep(0.02)
        assert described["result"]["steps"][0]["output"] == {"n": 1, "s": "x"}


async def test_expect_continue_is_answered_before_the_body(echo_project: Path,
                                                           tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s", HttpLimits(max_body=1000)) as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        try:
            writer.write(b"POST /x HTTP/1.1\r\nhost: localhost\r\nexpect: 100-continue\r\n"
                         b"content-length: 4\r\nconnection: close\r\n\r\n")
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"body")
            final = Raw.parse(await asyncio.wait_for(reader.read(), 5))
            assert final.status == 201 and final.json()["body"] == "body"
        finally:
            writer.close()
            await writer.wait_closed()
        # too large: refused at once, so the client never sends it
        refused = await live.raw(b"POST /x HTTP/1.1\r\nhost: localhost\r\nexpect: 100-continue"
                                 b"\r\ncontent-length: 5000\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 413 ")


async def test_malformed_heads_get_400_at_once(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live:
        for length in (b"abc", b"-1", b"99999999999999999999999", b"1, 2"):
            started = time.monotonic()
            answer = await live.raw(b"POST /x HTTP/1.1\r\nhost: localhost\r\ncontent-length: "
                                    + length + b"\r\n\r\n")
            assert Raw.parse(answer).status == 400, length
            assert time.monotonic() - started < 2
        assert Raw.parse(await live.raw(b"GARBAGE\r\n\r\n")).status == 400
        long_header = b"GET /x HTTP/1.1\r\nhost: localhost\r\nx: " + b"a" * 9000 + b"\r\n\r\n"
        assert Raw.parse(await live.raw(long_header)).status == 400
        assert (await live.call("GET", "/x")).status == 201


async def test_oversized_bodies_get_413(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s", HttpLimits(max_body=1000)) as live:
        # refused from the length alone: the body is never sent
        declared = await live.raw(
            b"POST /x HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1001\r\n\r\n")
        assert Raw.parse(declared).status == 413
        assert b"over the dev server's limit of 1000 bytes" in declared
        # a chunked body has no length: refused once it grows past the limit
        head = b"POST /x HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n"
        streamed = Raw.parse(await live.raw(head + chunked(b"a" * 600, b"b" * 600)))
        assert streamed.status == 413
        assert (await live.call("POST", "/x", b"a" * 1000)).status == 201
    async with serving(echo_project, tmp_path / "s") as live:
        declared = await live.raw(b"POST /x HTTP/1.1\r\nhost: localhost\r\n"
                                  b"content-length: %d\r\n\r\n" % (MAX_BODY + 1))
        assert Raw.parse(declared).status == 413


async def test_head_answers_headers_without_a_body(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live:
        worker = await live.call("HEAD", "/anything")
        assert worker.status == 201 and worker.body == b""
        assert int(worker.header("content-length") or 0) > 0
        api = await live.call("HEAD", f"{API}/workflows")
        assert api.status == 200 and api.body == b""
        assert api.header("content-type") == "application/json"
        assert int(api.header("content-length") or 0) == len(
            (await live.call("GET", f"{API}/workflows")).body)


async def test_api_refusals_are_json(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live:
        wrong = await live.call("DELETE", f"{API}/workflows/hold/instances")
        assert wrong.status == 405 and wrong.header("allow") == "GET, HEAD, POST"
        assert wrong.json()["errors"][0]["message"] == (
            "DELETE is not allowed on /workflows/hold/instances; use GET, HEAD, POST")
        for path in (f"{API}/nope", f"{API}/workflows/hold/whatever", API):
            missing = await live.call("GET", path)
            assert missing.status == 404 and missing.header("content-type") == "application/json"
            assert missing.json()["success"] is False
            [error] = missing.json()["errors"]
            assert set(error) == {"code", "message"} and error["message"].startswith("no API route")
        bad = await live.call("POST", f"{API}/workflows/hold/instances", b'{"id": ')
        assert bad.status == 400
        assert bad.json()["errors"][0]["message"] == (
            "the request body is not JSON: Expecting value: line 1 column 8 (char 7)")
        bad = await live.call("POST", f"{API}/workflows/hold/instances", b'\xff{"id": "x"}')
        assert bad.status == 400 and "not JSON" in bad.json()["errors"][0]["message"]
        deep = await live.call("POST", f"{API}/workflows/hold/instances", b"[" * 100_000)
        assert deep.status == 400
        extra = await live.call("POST", f"{API}/workflows/hold/instances",
                                b'{"id": "u-1", "params": {}, "delay": 5}')
        assert extra.status == 400
        assert extra.json()["errors"][0]["message"] == (
            "unknown create option(s) ['delay']: use id, params")
        assert (await live.call("GET", f"{API}/workflows/hold/instances")).json()["result"] == []
        made = await live.call("POST", f"{API}/workflows/hold/instances", b'{"id": "u-2"}')
        assert made.status == 200
        patch = await live.call("PATCH", f"{API}/workflows/hold/instances/u-2",
                                b'{"action": "terminate", "rollback": false, "force": true}')
        assert patch.status == 400
        assert patch.json()["errors"][0]["message"] == (
            "unknown instance action option(s) ['force']: use action, from, rollback")
        assert (await live.call("PROPFIND", "/x")).status == 501


async def test_worker_sees_url_method_repeated_headers_and_body(echo_project: Path,
                                                                tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live, aiohttp.ClientSession() as client:
        async with client.put(f"{live.base}/path/x?q=1&q=2", data=b"\x00bytes\xff",
                              headers=[("X-Multi", "one"), ("X-Multi", "café")]) as resp:
            assert resp.status == 201
            assert resp.headers.getall("set-cookie") == ["a=1", "b=2"]
            seen = await resp.json()
        assert seen == {"method": "PUT", "url": f"{live.base}/path/x?q=1&q=2",
                        "x_multi": ["one", "cafÃ©"],  # byte strings, as Workers read them
                        "body": "\x00bytes\xff"}
        # a kept-alive connection serves a second request
        async with client.get(f"{live.base}/again") as resp:
            assert resp.status == 201 and (await resp.json())["method"] == "GET"


async def test_only_local_hosts_are_answered(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live:
        made = await live.call("POST", f"{API}/workflows/hold/instances", b'{"id": "h-1"}')
        assert made.status == 200
        rebound = await live.call("DELETE", f"{API}/workflows/hold",
                                  headers={"host": "rebind.evil.example"})
        assert rebound.status == 403
        message = rebound.json()["errors"][0]["message"]
        assert 'Host "rebind.evil.example" is not this dev server' in message
        assert f"open http://localhost:{live.port}/ instead" in message
        listed = (await live.call("GET", f"{API}/workflows/hold/instances")).json()["result"]
        assert [i["id"] for i in listed] == ["h-1"]
        worker = await live.call("GET", "/x", headers={"host": f"evil.example:{live.port}"})
        assert worker.status == 403 and b"DNS rebinding" in worker.body
        junk = await live.raw(b"GET /x HTTP/1.1\r\nhost: \xff[\r\nconnection: close\r\n\r\n")
        assert Raw.parse(junk).status == 403
        for host in ("localhost", f"localhost:{live.port}", "app.localhost", "127.0.0.2:1",
                     f"[::1]:{live.port}"):
            answer = await live.call("GET", f"{API}/workflows", headers={"host": host})
            assert answer.status == 200, host


async def test_state_changes_from_foreign_pages_are_refused(echo_project: Path,
                                                           tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s") as live:
        path = f"{API}/workflows/hold/instances"
        # what a form or fetch() on another site can send without a CORS preflight
        simple = {"origin": "https://evil.example", "content-type": "text/plain"}
        refused = await live.call("POST", path, b'{"id": "o-1"}', headers=simple)
        assert refused.status == 403
        assert "from the page at https://evil.example" in refused.json()["errors"][0]["message"]
        for origin in ("null", "http://localhost.evil.example"):
            answer = await live.call("POST", path, b'{"id": "o-1"}', headers={"origin": origin})
            assert answer.status == 403, origin
        assert (await live.call("GET", path)).json()["result"] == []
        same = await live.call("POST", path, b'{"id": "o-2"}',
                               headers={"origin": f"http://localhost:{live.port}"})
        assert same.status == 200
        plain = await live.call("POST", path, b'{"id": "o-3"}')
        assert plain.status == 200
        read = await live.call("GET", path, headers={"origin": "https://evil.example"})
        assert read.status == 200 and read.header("access-control-allow-origin") is None
        assert [i["id"] for i in read.json()["result"]] == ["o-2", "o-3"]
        # the Worker's own paths are its business
        worker = await live.call("POST", "/x", b"hi", headers={"origin": "https://evil.example"})
        assert worker.status == 201


async def test_idle_and_slow_clients_are_dropped(echo_project: Path, tmp_path: Path) -> None:
    limits = HttpLimits(idle_timeout=0.3, read_timeout=0.3)
    async with serving(echo_project, tmp_path / "s", limits) as live:
        started = time.monotonic()
        assert await live.raw(b"") == b""  # silent: closed without an answer
        assert await live.raw(b"GET / HTTP/1.1\r\nhost: loc") == b""  # head never finished
        assert time.monotonic() - started < 3
        stalled = Raw.parse(await live.raw(
            b"POST /x HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10\r\n\r\nab"))
        assert stalled.status == 408
        # kept alive after an answer, then idle: closed too
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        try:
            writer.write(f"GET /x HTTP/1.1\r\nhost: localhost:{live.port}\r\n\r\n".encode())
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert first.startswith(b"HTTP/1.1 201")
            rest = await asyncio.wait_for(reader.read(), 5)
            assert rest.startswith(b'{"method": "GET"')
        finally:
            writer.close()
            await writer.wait_closed()


async def test_idle_connections_are_capped(echo_project: Path, tmp_path: Path) -> None:
    async with serving(echo_project, tmp_path / "s", HttpLimits(max_connections=5)) as live:
        idle = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(20)]
        try:
            answer = await live.call("GET", "/x")
            assert answer.status == 201
            await asyncio.sleep(0.1)
            closed = 0
            for reader, _ in idle:
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(), 0.05) == b"":
                        closed += 1
            assert closed >= 15
        finally:
            for _, writer in idle:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


def test_local_host_and_origin_rules() -> None:
    assert local_host("LOCALHOST:8787", "127.0.0.1") and local_host("127.9.9.9", "127.0.0.1")
    assert local_host("10.0.0.5:8787", "10.0.0.5") and local_host("[::1]", "127.0.0.1")
    assert local_host("192.168.1.4:80", "0.0.0.0")  # an IP literal cannot be rebound
    for host in ("rebind.evil.example", "localhost.evil.example", "10.0.0.6", "::1",
                 "[::1]x", "127.0.0.1:http", "", "evil.example:8787"):
        assert not local_host(host, "10.0.0.5"), host
    assert local_origin("http://localhost:3000", "127.0.0.1")
    assert not local_origin("null", "127.0.0.1")
    assert not local_origin("file://", "127.0.0.1")


def test_open_ip_warns_and_loopback_does_not() -> None:
    for ip in ("0.0.0.0", "::", "192.168.1.4", "my-laptop.lan"):
        warning = exposure_warning(ip)
        assert warning is not None and "have no authentication" in warning, ip
        assert "create, terminate and delete instances" in warning
    for ip in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert exposure_warning(ip) is None, ip


def test_ports_are_checked_and_bind_errors_name_the_cause(tmp_path: Path) -> None:
    for bad, says in (("99999", "99999 is out of range: a port is 1-65535"),
                      ("-1", "-1 is out of range"), ("http", "'http' is not a port number")):
        r = run_cli("dev", "--config", str(EXAMPLE), "--port", bad)
        assert r.code == 2 and says in r.err and "Traceback" not in r.err, r.err
        r = run_cli("workflows", "list", "--local", "--port", bad)
        assert r.code == 2 and says in r.err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli("dev", "--config", str(EXAMPLE), "--port", str(port), "--persist-to",
                    str(tmp_path / "s"))
    assert r.code == 1 and "Traceback" not in r.err
    assert f"port {port} on 127.0.0.1 is already in use: pick another --port" in r.err
    assert "WARNING" not in r.err  # loopback: no exposure warning
    foreign = OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    assert listen_error(foreign, "192.0.2.1", 8787).startswith(
        "cannot assign requested address 192.0.2.1: it is not an address of this machine")
    denied = OSError(errno.EACCES, "Permission denied")
    assert "permission denied listening on 127.0.0.1:80" in listen_error(denied, "127.0.0.1", 80)
