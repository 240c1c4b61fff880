"""Start ``wrangler dev`` on a free loopback port, offline, and stop it again.

Example::

    from tools.realruntime.wrangler_dev import WranglerDev

    with WranglerDev(config="tests/e2e/worker/wrangler.local.toml") as dev:
        urllib.request.urlopen(dev.url + "/status/...")

What it arranges:

- Node 22 from ``node_modules/node`` first on ``PATH`` (wrangler 4.164 needs Node >= 22.12);
- ``MINIFLARE_WORKERD_PATH`` pointing at ``workerd_wrapper.py``, which gives workerd the folder
  of the self-built Pyodide bundle (``.build/pyodide``);
- ``wrangler dev --ip 127.0.0.1 --port <free port>`` in its own process group, with metrics,
  the ``Request.cf`` download and the update check off, and its state in a temporary folder;
- readiness: the first HTTP answer from the port (any status) after wrangler says it is ready.

`stop()` sends SIGTERM to the whole process group (wrangler, workerd), then SIGKILL if needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / "node_modules" / "node" / "bin"
NPM_BIN = REPO / "node_modules" / ".bin"
WRANGLER = NPM_BIN / "wrangler"
WRAPPER = Path(__file__).resolve().parent / "workerd_wrapper.py"
BUNDLE_DIR = REPO / ".build" / "pyodide"
BUNDLE = BUNDLE_DIR / "pyodide_dev.capnp.bin"


class WranglerDevError(RuntimeError):
    """wrangler dev could not be started (the message holds the end of its output)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_prerequisites() -> None:
    """Raise `WranglerDevError` naming what `tools/realruntime/setup.py` must build first."""
    missing = [
        str(p.relative_to(REPO)) for p in (NODE_BIN / "node", WRANGLER, BUNDLE) if not p.exists()
    ]
    if missing:
        raise WranglerDevError(
            f"missing {', '.join(missing)}: run `python3 tools/realruntime/setup.py` first"
        )


class WranglerDev:
    """One ``wrangler dev`` process serving ``config`` on ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        port: int | None = None,
        startup_timeout: float = 90.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.config = Path(config).resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: deque[str] = deque(maxlen=400)
        self._reader: threading.Thread | None = None
        self._state_dir: tempfile.TemporaryDirectory[str] | None = None

    # -- environment -------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(NODE_BIN), str(NPM_BIN), env.get("PATH", "")])
        env.update(
            MINIFLARE_WORKERD_PATH=str(WRAPPER),
            WORKFLOWS_SAGA_PYODIDE_BUNDLE_DIR=str(BUNDLE_DIR),
            WRANGLER_SEND_METRICS="false",
            CLOUDFLARE_CF_FETCH_ENABLED="false",
            WRANGLER_LOG="info",
            NO_COLOR="1",
            FORCE_COLOR="0",
            CI="true",
        )
        if self._state_dir is not None:
            env["WRANGLER_LOG_PATH"] = os.path.join(self._state_dir.name, "logs")
        env.update(self.extra_env)
        return env

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> WranglerDev:
        check_prerequisites()
        self._state_dir = tempfile.TemporaryDirectory(prefix="wrangler-state-")
        cmd = [
            str(NODE_BIN / "node"),
            str(WRANGLER),
            "dev",
            "--config",
            str(self.config),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--inspector-port",
            str(free_port()),
            "--persist-to",
            self._state_dir.name,
            "--show-interactive-dev-session=false",
            "--log-level",
            "info",
        ]
        started = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.config.parent,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            self._output.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _wait_ready(self, started: float) -> None:
        assert self._proc is not None
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise WranglerDevError(
                    f"wrangler dev exited with code {self._proc.returncode}:\n{self.output()}"
                )
            if any("Ready on" in line for line in list(self._output)):
                try:
                    urllib.request.urlopen(self.url + "/__ready__", timeout=30).close()
                    return
                except urllib.error.HTTPError:
                    return  # any HTTP answer means the Worker is up
                except OSError:
                    pass
            time.sleep(0.1)
        raise WranglerDevError(
            f"wrangler dev did not answer on {self.url} within {self.startup_timeout:.0f}s:\n"
            f"{self.output()}"
        )

    def output(self, last: int = 80) -> str:
        """The last ``last`` lines wrangler printed."""
        return "\n".join(list(self._output)[-last:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop wrangler and its workerd (the whole process group)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        if proc is not None:
            # workerd may outlive wrangler for a moment: make sure the group is gone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._state_dir is not None:
            self._state_dir.cleanup()
            self._state_dir = None

    def __enter__(self) -> WranglerDev:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
