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
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workflows_emulator import StateDirectoryBusy
from workflows_emulator.state_lock import LOCK_NAME, StateLock, holder, running_server

OTHER_PID = os.getppid()  # alive, and not this process: the "another process" message


def _hold_without_text(state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    return fd


def _text(pid: int, server: str | None = None) -> bytes:
    return json.dumps({"pid": pid, "command": "workflows-emulator dev", "since": time.time(),
                       "server": server}).encode()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_text_later(fd: int, delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        os.pwrite(fd, _text(OTHER_PID), 0)

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


def test_text_left_by_a_killed_holder_does_not_name_it_as_the_new_holder(
        tmp_path: Path) -> None:
    # A holder killed outright leaves its text (only `release` empties the file). Its
    # successor takes the flock and writes just after; a contender arriving in between must
    # not name the dead process, nor hand out its dead server's address.
    state = tmp_path / "state"
    state.mkdir()
    dead = _dead_pid()
    (state / LOCK_NAME).write_bytes(_text(dead, "http://127.0.0.1:9"))
    assert holder(state) is None  # nobody holds it: the text alone means nothing
    fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the successor, before its write
    try:
        held = holder(state)
        assert held is not None and held.pid is None and held.server is None
        assert running_server(state) is None
        writer = threading.Thread(target=lambda: (time.sleep(0.2), os.ftruncate(fd, 0),
                                                  os.pwrite(fd, _text(OTHER_PID), 0)))
        writer.start()
        with pytest.raises(StateDirectoryBusy, match=f"in use by pid {OTHER_PID} ") as busy:
            StateLock.acquire(state)
        writer.join()
        assert str(dead) not in str(busy.value)
    finally:
        os.close(fd)


def test_readers_never_find_the_holders_text_missing_while_it_publishes(tmp_path: Path) -> None:
    # The text is written over the old one and then cut to length, so a reader sees the old
    # text or the new one, never an empty file (the dev server publishes its address while
    # CLI commands look for it).
    state = tmp_path / "state"
    unknown = 0
    with StateLock.acquire(state) as lock:
        stop = threading.Event()

        def publish() -> None:
            port = 10_000
            while not stop.is_set():  # five-digit ports: the text keeps its length
                lock.publish_server(f"http://127.0.0.1:{port}")
                port = port + 1 if port < 65_535 else 10_000
        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            for _ in range(5_000):
                held = holder(state)
                assert held is not None
                unknown += held.pid is None
        finally:
            stop.set()
            publisher.join()
    assert unknown == 0
