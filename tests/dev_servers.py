"""A real ``workflows-emulator dev`` subprocess on a free loopback port, for tests that drive the
dev server over HTTP (the CLI tier, time travel, the examples); and the small HTTP client they use."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).parent / "workflows-emulator"
API = "/__workflows/api"


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(method: str, url: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request; (status, the body parsed as JSON, or as text when it is not JSON)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode("utf-8", "replace")


class DevServer:
    """``workflows-emulator dev`` on ``config`` and ``state``, with any ``extra`` arguments."""

    def __init__(self, config: Path, state: Path, extra: Sequence[str] = (),
                 cwd: Path | None = None) -> None:
        self.config, self.state = config, state
        self.extra, self.cwd = tuple(extra), cwd
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self, timeout: float = 30.0) -> None:
        """Start it and return once it says it is ready (or fail with what it printed)."""
        self.proc = subprocess.Popen(
            [str(SCRIPT), "dev", *self.extra, "--config", str(self.config), "--port",
             str(self.port), "--persist-to", str(self.state)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.cwd,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output += line
            if "Ready on" in line:
                return
        self.stop()
        raise AssertionError(f"the dev server did not start:\n{self.output}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Stop it (SIGINT by default, as Ctrl-C) and wait; its exit code."""
        proc = self.proc
        if proc is None:
            return 0
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
        self.output += rest or ""
        return proc.returncode

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A call of the emulator's JSON API."""
        return http(method, self.base + API + path, body)

    def wait_status(self, workflow: str, instance: str, statuses: set[str],
                    timeout: float = 15) -> dict[str, Any]:
        """Poll the API until the instance has one of ``statuses``; its view then."""
        deadline = time.monotonic() + timeout
        while True:
            code, body = self.api("GET", f"/workflows/{workflow}/instances/{instance}")
            if code == 200 and body["result"]["status"] in statuses:
                result: dict[str, Any] = body["result"]
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance} stayed {body}")
            time.sleep(0.05)
