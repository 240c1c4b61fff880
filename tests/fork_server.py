"""A crash program's ``serve`` mode, driven from a test: the program forks one child per job
(a whole emulator run, killed where the job says) and reports how the child ended."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


class ForkServer:
    """``python PROGRAM serve``: send a job (JSON), get ``{"signal", "exit"}`` back."""

    def __init__(self, program: Path, env: dict[str, str] | None = None) -> None:
        self._proc = subprocess.Popen([sys.executable, str(program), "serve"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env=env)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job in a fresh child; how it ended."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(job) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        assert line, f"the fork server died (rc={self._proc.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        """End the server (it exits when its input closes)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
