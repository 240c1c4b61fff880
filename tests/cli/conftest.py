"""Fixtures for the CLI tests: the real console script, temp projects, a dev server subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dev_servers import SCRIPT, DevServer, free_port, http  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "transfer-project" / "wrangler.toml"

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


@pytest.fixture
def dev_server(state: Path) -> Iterator[Callable[..., DevServer]]:
    """Start dev servers (``start(config, *extra_args)``); every one is stopped when the test
    ends."""
    servers: list[DevServer] = []

    def start(config: Path, *extra: str) -> DevServer:
        server = DevServer(config, state, extra=extra)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
