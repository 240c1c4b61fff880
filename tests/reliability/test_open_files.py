"""Bounded file descriptors: instance files are opened on demand and closed when idle.

A real subprocess runs under ``ulimit -n 256`` (the macOS default) with 1,000 instances:
created one by one to the end, then 1,000 parked side by side on a timer and woken together,
then every one described. Running out of descriptors anyway gives one clear error.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")]

CHILD = textwrap.dedent("""
    import asyncio, json, os, sys
    from workflows_emulator import Emulator
    from workflows_saga import WorkflowEntrypoint

    N = int(sys.argv[2])
    peak = 0

    def fds():
        global peak
        peak = max(peak, len(os.listdir("/proc/self/fd")))  # needs a descriptor itself

    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            a = await step.do("a", lambda: 1)
            return await step.do("b", lambda: a + 1)

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1)
            await step.sleep("nap", "1 hour")
            return await step.do("b", lambda: 2)

    async def main():
        budget = int(os.environ.get("MAX_OPEN_FILES", "0")) or None
        async with Emulator(sys.argv[1], max_open_files=budget) as emu:
            quick = emu.workflow(Quick, name="quick")
            for n in range(N):
                inst = await quick.create(id=f"q{n}")
                assert (await inst.wait())["status"] == "complete"
                fds()
            napper = emu.workflow(Napper, name="napper")
            for n in range(N):
                await napper.create(id=f"n{n}")
            await emu.settle()
            fds()
            waiting = [r for r in await napper.list() if r["status"] == "waiting"]
            await emu.advance("1 hour")
            fds()
            done = [r for r in await napper.list() if r["status"] == "complete"]
            for row in await quick.list():
                inst = await quick.get(row["id"])
                assert len(inst.steps()) == 2 and len(inst.events()) > 4
                fds()
        print(json.dumps({"waiting": len(waiting), "complete": len(done), "peak": peak,
                          "after": len(os.listdir("/proc/self/fd"))}))

    asyncio.run(main())
""")


def limited(fds: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_a_thousand_instances_under_ulimit_256(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "state"), "1000"],
                          capture_output=True, text=True, timeout=240,
                          preexec_fn=lambda: limited(256))
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["waiting"] == 1000 and figures["complete"] == 1000
    assert figures["peak"] < 256
    assert figures["after"] < 16  # closed: what is left is the interpreter's own


STARVED = textwrap.dedent("""
    import asyncio, os, sys
    from workflows_emulator import Emulator
    from workflows_saga import WorkflowEntrypoint

    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            return await step.do("a", lambda: 1)

    async def main():
        async with Emulator(sys.argv[1]) as emu:
            quick = emu.workflow(Quick, name="quick")
            await (await quick.create(id="first")).wait()
            emu.files.wait_closed()  # its file is closed in the background: let that end
            hogs = []
            try:
                while True:  # something else in the process takes every descriptor left
                    hogs.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            for fd in hogs[-2:]:
                os.close(fd)
            await quick.create(id="second")

    asyncio.run(main())
""")


def test_out_of_descriptors_is_one_clear_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", STARVED, str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: limited(64))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("workflows_emulator.errors.StorageError: too many open files "
                           "(the limit is 64):"), done.stderr
    assert "second.sqlite; raise it with `ulimit -n`, or pass a smaller max_open_files" in last
    assert done.stderr.count("too many open files") == 1  # one error, not a flood
