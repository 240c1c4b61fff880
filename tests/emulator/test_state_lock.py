"""The state directory's lock names its holder, even to a contender that arrives early.

A holder takes the ``flock`` first and writes who it is just after; a second process that
tries in between must still name it (it waits briefly for the text) rather than blame "an
unknown process". These run in one process: ``flock`` locks belong to an open file
description, so a second ``open`` of the same file contends like another process would.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pytest

from workflows_emulator import StateDirectoryBusy
from workflows_emulator.state_lock import LOCK_NAME, StateLock, holder

OTHER_PID = 2_000_000_001  # not this process, so the message is the "another process" one


def _hold_without_text(state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    return fd


def _write_text_later(fd: int, delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        info = {"pid": OTHER_PID, "command": "workflows-emulator dev", "since": time.time(),
                "server": None}
        os.pwrite(fd, json.dumps(info).encode(), 0)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_a_contender_between_the_holders_flock_and_its_write_names_the_holder(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    fd = _hold_without_text(state)
    try:
        writer = _write_text_later(fd, 0.2)
        with pytest.raises(StateDirectoryBusy, match=f"in use by pid {OTHER_PID} "):
            StateLock.acquire(state)
        writer.join()
        held = holder(state)
        assert held is not None and held.pid == OTHER_PID
    finally:
        os.close(fd)


def test_a_holder_that_never_writes_its_text_is_reported_as_unknown_without_hanging(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    fd = _hold_without_text(state)
    try:
        started = time.monotonic()
        with pytest.raises(StateDirectoryBusy, match="in use by an unknown process"):
            StateLock.acquire(state)
        assert time.monotonic() - started < 10
        held = holder(state)
        assert held is not None and held.pid is None
    finally:
        os.close(fd)


def test_a_lock_released_while_the_contender_waits_is_taken(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fd = _hold_without_text(state)
    releaser = threading.Timer(0.2, os.close, args=(fd,))
    releaser.start()
    lock = StateLock.acquire(state)
    releaser.join()
    try:
        held = holder(state)
        assert held is not None and held.pid == os.getpid()
    finally:
        lock.release()
    assert holder(state) is None


def test_the_holders_text_is_rewritten_in_place_for_readers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateLock.acquire(state, command="workflows-emulator dev") as lock:
        lock.publish_server("http://127.0.0.1:8787")
        held = holder(state)
        assert held is not None and held.server == "http://127.0.0.1:8787"
        lock.publish_server(None)
        held = holder(state)
        assert held is not None and held.server is None and held.pid == os.getpid()
