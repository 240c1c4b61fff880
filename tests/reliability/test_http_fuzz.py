"""The dev server under hostile HTTP: malformed heads, lying lengths, bad chunks, huge headers
and bodies, stalled clients and random bytes, sent from real sockets to a real
``workflows-emulator dev`` on 127.0.0.1.

What must hold afterwards: every answer was an HTTP status the server means (never a 500),
stalled clients did not hold anyone else up, the instances made before are unchanged, the
server still answers and shuts down cleanly, and its console shows no traceback.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.conftest import EXAMPLE, DevServer

pytestmark = pytest.mark.slow

MAX_BODY = 10 << 20
METHODS = ["GET", "POST", "PATCH", "DELETE", "HEAD", "PUT", "OPTIONS", "get", "PR0PFIND", ""]
# Paths whose answers do not depend on the body being sensible: the example Worker's 404 and
# the API's refusals (no instance is created by accident, no Worker error is provoked).
NOWHERE = "/__workflows/api/workflows/nowhere/instances"
TARGETS = ["/", NOWHERE, "/__workflows/api/workflows", "/__workflows/api/nope", "*", "//x",
           "http://evil.example/x", "/%zz", "/a b", "/\x00"]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "http/1.1", ""]
LENGTHS = ["0", "5", "-1", "abc", "1e3", " 7", "99999999999999999999999", str(MAX_BODY + 1),
           "5, 5", "0x10"]
CHUNK_SIZES = [b"0", b"3", b"ff", b"-1", b"zz", b"ffffffffffffffffffff", b"3;ext=1", b"", b" 3"]

text = st.text(alphabet=st.characters(codec="latin-1"), max_size=40)
header = st.tuples(st.sampled_from(["host", "content-length", "transfer-encoding", "origin",
                                    "expect", "x-a", "x a", ""]) | text, text)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request that is wrong somewhere: its line, headers, length or chunks, or all bytes."""
    kind = draw(st.sampled_from(["line", "headers", "length", "chunked", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=2000))
    line = (f"{draw(st.sampled_from(METHODS) | text)} {draw(st.sampled_from(TARGETS) | text)} "
            f"{draw(st.sampled_from(VERSIONS))}") if kind == "line" else f"POST {NOWHERE} HTTP/1.1"
    headers = [("host", "127.0.0.1"), ("connection", "close")]
    body = draw(st.binary(max_size=200))
    if kind == "headers":
        headers += draw(st.lists(header, max_size=8))
    elif kind == "length":
        headers.append(("content-length", draw(st.sampled_from(LENGTHS) | text)))
    elif kind == "chunked":
        headers.append(("transfer-encoding", draw(st.sampled_from(["chunked", "gzip, chunked",
                                                                   "chunked, chunked"]))))
        sizes = draw(st.lists(st.sampled_from(CHUNK_SIZES), min_size=1, max_size=4))
        body = b"".join(size + b"\r\n" + draw(st.binary(max_size=20)) + b"\r\n" for size in sizes)
    head = "\r\n".join([line, *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n"
    return head.encode("latin-1") + body


def exchange(port: int, data: bytes, timeout: float = 5, *, grace: float = 0.05) -> bytes:
    """Send ``data`` and read all the server sends before it closes.

    A request the server cannot finish (a body shorter than declared, a head cut short) would
    wait for the server's timeouts; after ``grace`` seconds without an answer our side is
    closed instead, so the server sees the end of the stream.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if not select.select([sock], [], [], grace)[0]:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close first on a hopeless request
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The status code of the first answer, or ``None`` if the server closed without one."""
    if not answer:
        return None
    assert answer.startswith(b"HTTP/"), answer[:200]  # aiohttp echoes the request's version
    return int(answer.split(b" ", 2)[1])


def assert_meant(answer: bytes) -> None:
    """The server answered on purpose: a success, a client error, or 501; never a crash."""
    status = status_of(answer)
    assert status is None or 200 <= status < 500 or status == 501, answer[:300]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def dev_server(state: Path) -> Iterator[Callable[[Path], DevServer]]:
    started: list[DevServer] = []

    def start(config: Path) -> DevServer:
        started.append(DevServer(config, state))
        started[-1].start()
        return started[-1]

    yield start
    for one in started:
        one.stop()


def test_fuzzed_requests_leave_the_server_answering_and_state_intact(
        dev_server: Callable[[Path], DevServer]) -> None:
    server = dev_server(EXAMPLE)
    code, made = server.api("POST", "/workflows/transfer/instances",
                            {"id": "keep-1", "params": {"from": "a", "to": "b", "amount": 1}})
    assert code == 200, made
    before = server.wait_status("transfer", "keep-1", {"complete"})

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests())
    def malformed(data: bytes) -> None:
        answer = exchange(server.port, data)
        assert_meant(answer)
        answered.append(status_of(answer))

    answered: list[int | None] = []
    malformed()
    # most malformed requests get a reasoned refusal, not just a dropped connection
    assert sum(status is not None for status in answered) > len(answered) // 2, answered

    # fixed worst cases: oversized heads and bodies, declared and streamed
    huge_line = b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nhost: localhost\r\n\r\n"
    huge_header = b"GET / HTTP/1.1\r\nhost: localhost\r\nx-big: " + b"b" * 20_000 + b"\r\n\r\n"
    many = b"GET / HTTP/1.1\r\nhost: localhost\r\n" + b"x: 1\r\n" * 500 + b"\r\n"
    for data in (huge_line, huge_header, many):
        assert status_of(exchange(server.port, data)) == 400
    declared = b"POST /transfers HTTP/1.1\r\nhost: localhost\r\ncontent-length: %d\r\n\r\n"
    assert status_of(exchange(server.port, declared % (MAX_BODY + 1))) == 413
    streamed = (b"POST /__workflows/api/workflows/transfer/instances HTTP/1.1\r\nhost: localhost"
                b"\r\ntransfer-encoding: chunked\r\n\r\n"
                + (b"100000\r\n" + b"[" * 0x100000 + b"\r\n") * 11 + b"0\r\n\r\n")
    assert status_of(exchange(server.port, streamed)) == 413

    # slow clients: a byte at a time, then silence; others are served meanwhile
    stalled = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
    try:
        partial = b"POST /transfers HTTP/1.1\r\nhost: localhost\r\ncontent-length: 50\r\n\r\n{"
        for i in range(0, len(partial), 4):
            for sock in stalled:
                sock.send(partial[i:i + 4])
            time.sleep(0.005)
        asked = time.monotonic()
        code, listed = server.api("GET", "/workflows/transfer/instances")
        assert code == 200 and time.monotonic() - asked < 2
    finally:
        for sock in stalled:
            sock.close()

    assert [i["id"] for i in listed["result"]] == ["keep-1"]
    after = server.wait_status("transfer", "keep-1", {"complete"})
    assert after == before
    code, body = server.api("POST", "/workflows/transfer/instances",
                            {"id": "keep-2", "params": {"from": "a", "to": "b", "amount": 1}})
    assert code == 200 and body["result"]["id"] == "keep-2"
    assert server.stop() == 0
    assert "Traceback" not in server.output, server.output
    assert len(server.output.splitlines()) < 10, server.output
