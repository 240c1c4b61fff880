"""Fixtures for the CLI tests: the real console script, temp projects, a dev server subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "transfer-project" / "wrangler.toml"
SCRIPT = Path(sys.executable).parent / "workflows-emulator"

SDK_ENTRY = '''
from workers import Response, WorkflowEntrypoint
from workers.workflows import NonRetryableError


class Approval(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def prepare():
            return {"order": event.payload["order"]}

        await prepare()
        approved = await step.wait_for_event("approval", "approved", timeout="1 hour")

        @step.do("finish")
        async def finish(prepare, ctx):
            return {"order": prepare["order"], "by": approved["payload"]["by"],
                    "attempt": ctx["attempt"]}

        return await finish()


class Errors(WorkflowEntrypoint):
    async def run(self, event, step):
        kind = event["payload"]["kind"]

        @step.do(config={"retries": {"limit": 0, "delay": 0}})
        async def boom():
            if kind == "value":
                raise ValueError("bad value")
            if kind == "key":
                raise KeyError("k")
            if kind == "nonretryable":
                raise NonRetryableError("stop")
            return {"kind": kind}

        if kind == "rollback":
            @step.do("with rollback", rollback=lambda rb: None)
            async def never():
                return 1

        try:
            return await boom()
        except ValueError as exc:
            return {"caught": "ValueError", "message": str(exc)}
        except NonRetryableError as exc:
            return {"caught": "NonRetryableError", "message": str(exc)}
        except Exception as exc:
            return {"caught": type(exc).__name__, "message": str(exc)}


async def on_fetch(request, env):
    instance = await env.APPROVAL.create(id="from-fetch", params={"order": await request.text()})
    return Response.json({"id": instance.id, "greeting": env.GREETING})
'''

SDK_TOML = '''
name = "sdk-project"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[vars]
GREETING = "hi"

[[workflows]]
name = "approval"
binding = "APPROVAL"
class_name = "Approval"

[[workflows]]
name = "errors"
binding = "ERRORS"
class_name = "Errors"
'''


@dataclass
class Result:
    """A finished CLI run."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str, cwd: Path | None = None, module: bool = False) -> Result:
    """Run the real console script (or ``python -m workflows_emulator``)."""
    cmd = [sys.executable, "-m", "workflows_emulator"] if module else [str(SCRIPT)]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def sdk_project(tmp_path: Path) -> Path:
    """A project written against the official SDK only (``workers``)."""
    root = tmp_path / "sdk-project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(SDK_ENTRY))
    (root / "wrangler.toml").write_text(SDK_TOML)
    return root / "wrangler.toml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON or text)."""
    data = body if isinstance(body, bytes) else None
    if body is not None and data is None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode()


class DevServer:
    """A ``workflows-emulator dev`` subprocess on a free loopback port."""

    def __init__(self, config: Path, state: Path) -> None:
        self.config, self.state = config, state
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(SCRIPT), "dev", "--config", str(self.config), "--port", str(self.port),
             "--persist-to", str(self.state)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output += line
            if "Ready on" in line:
                return
        self.stop()
        raise AssertionError(f"dev server did not start:\n{self.output}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        proc = self.proc
        if proc is None:
            return 0
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rest, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
        self.output += rest or ""
        return proc.returncode

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(method, self.base + "/__workflows/api" + path, body)

    def wait_status(self, workflow: str, instance: str, statuses: set[str],
                    timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            code, body = self.api("GET", f"/workflows/{workflow}/instances/{instance}")
            if code == 200 and body["result"]["status"] in statuses:
                result: dict[str, Any] = body["result"]
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance} stayed {body}")
            time.sleep(0.05)


@pytest.fixture
def dev_server(state: Path) -> Iterator[Callable[[Path], DevServer]]:
    """Start dev servers; every one is stopped when the test ends."""
    servers: list[DevServer] = []

    def start(config: Path) -> DevServer:
        server = DevServer(config, state)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
