"""`KvNamespace`: the Workers KV API on a real SQLite file, expiry on a `VirtualClock`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflows_emulator.bindings.kv import ByteStream, KvError, KvNamespace
from workflows_emulator.clock import VirtualClock
from workflows_emulator.errors import DamagedStateError, StorageError
from workflows_emulator.workers_shim.rpc import JsDict

NOW_S = 1_800_000_000


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start_ms=NOW_S * 1000)


@pytest.fixture
def kv(tmp_path: Path, clock: VirtualClock) -> Iterator[KvNamespace]:
    ns = KvNamespace(tmp_path / "kv" / "ns.sqlite", clock)
    yield ns
    ns.close()


async def test_put_get_text_json_bytes_and_missing(kv: KvNamespace) -> None:
    await kv.put("greeting", "héllo")
    await kv.put("doc", '{"a": [1, {"b": null}]}')
    await kv.put("raw", bytes([0, 1, 254, 255]))
    assert await kv.get("greeting") == "héllo"
    assert await kv.get("greeting", "text") == "héllo"
    doc = await kv.get("doc", "json")
    assert doc == {"a": [1, {"b": None}]} and isinstance(doc, JsDict)
    assert doc.a[1].b is None
    assert await kv.get("doc", {"type": "json"}) == doc
    assert await kv.get("doc", type="json") == doc
    assert await kv.get("raw", "arrayBuffer") == bytes([0, 1, 254, 255])
    assert await kv.get("greeting", "arrayBuffer") == "héllo".encode()
    assert await kv.get("missing") is None
    assert await kv.get("missing", "json") is None


async def test_stream_type_reads_once_in_chunks(kv: KvNamespace) -> None:
    value = bytes(range(256)) * 1000  # 256 KB: several chunks
    await kv.put("big", value)
    stream = await kv.get("big", "stream")
    assert isinstance(stream, ByteStream)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1 and b"".join(chunks) == value
    with pytest.raises(TypeError, match="locked"):
        await stream.bytes()
    reader = (await kv.get("big", type="stream")).getReader()
    got = b""
    while not (part := await reader.read()).done:
        got += part.value
    assert got == value


async def test_get_with_metadata(kv: KvNamespace) -> None:
    await kv.put("k", "v", metadata={"owner": "ada", "n": 1})
    await kv.put("plain", "p")
    result = await kv.getWithMetadata("k")
    assert result == {"value": "v", "metadata": {"owner": "ada", "n": 1}, "cacheStatus": None}
    assert result.metadata.owner == "ada"
    assert await kv.get_with_metadata("plain") == {"value": "p", "metadata": None,
                                                   "cacheStatus": None}
    assert await kv.getWithMetadata("missing") == {"value": None, "metadata": None,
                                                   "cacheStatus": None}
    assert (await kv.getWithMetadata("k", "arrayBuffer")).value == b"v"


async def test_bulk_get(kv: KvNamespace) -> None:
    await kv.put("a", '{"x": 1}', metadata=7)
    await kv.put("b", "0")
    assert await kv.get(["a", "b", "zz"]) == {"a": '{"x": 1}', "b": "0", "zz": None}
    assert await kv.get(["a", "b"], "json") == {"a": {"x": 1}, "b": 0}
    assert await kv.getWithMetadata(["a", "zz"]) == {
        "a": {"value": '{"x": 1}', "metadata": 7}, "zz": None}
    await kv.put("text", "not json")
    with pytest.raises(KvError, match="corresponds to a non-json value"):
        await kv.get(["a", "text"], "json")
    with pytest.raises(KvError, match=r'^KV GET_BULK failed: 400 "arrayBuffer" is not a valid '
                                      r'type. Use "json" or "text"$'):
        await kv.get(["a"], "arrayBuffer")
    with pytest.raises(KvError, match=r"^KV GET_BULK failed: 400 You can request a maximum of "
                                      r"100 keys$"):
        await kv.get([f"k{i}" for i in range(101)])
    assert len(await kv.get([f"k{i}" for i in range(100)])) == 100
    with pytest.raises(KvError, match="You must request a minimum of 1 key"):
        await kv.get([])


async def test_key_validation_messages(kv: KvNamespace) -> None:
    for call in (lambda k: kv.get(k), lambda k: kv.put(k, "v"), lambda k: kv.delete(k)):
        with pytest.raises(TypeError, match=r"^Key name cannot be empty\.$"):
            await call("")
        with pytest.raises(TypeError, match=r'^"\.\." is not allowed as a key name\.$'):
            await call("..")
    await kv.put("é" * 256, "fits")  # 512 bytes
    with pytest.raises(KvError, match=r"^KV PUT failed: 414 UTF-8 encoded length of 513 exceeds "
                                      r"key length limit of 512\.$"):
        await kv.put("x" * 513, "v")
    with pytest.raises(KvError, match=r"^KV GET failed: 414"):
        await kv.get("x" * 513)
    with pytest.raises(TypeError, match="must be a string"):
        await kv.get(5)  # type: ignore[arg-type]


async def test_put_validation_messages(kv: KvNamespace) -> None:
    with pytest.raises(KvError, match=r"^KV PUT failed: 400 Invalid expiration_ttl of 30\. "
                                      r"Expiration TTL must be at least 60\.$"):
        await kv.put("k", "v", expirationTtl=30)
    with pytest.raises(KvError, match=r"Invalid expiration_ttl of 0\. Please specify integer "
                                      r"greater than 0\."):
        await kv.put("k", "v", {"expirationTtl": 0})
    with pytest.raises(KvError, match=f"Invalid expiration of {NOW_S}. Please specify integer "
                                      "greater than the current number of seconds"):
        await kv.put("k", "v", expiration=NOW_S)
    with pytest.raises(KvError, match=f"Invalid expiration of {NOW_S + 30}. Expiration times "
                                      "must be at least 60 seconds in the future."):
        await kv.put("k", "v", expiration=NOW_S + 30)
    with pytest.raises(KvError, match=r"^KV PUT failed: 413 Metadata length of 1025 exceeds "
                                      r"limit of 1024\.$"):
        await kv.put("k", "v", metadata={"key": "x" * (1024 - len('{"key":""}') + 1)})
    await kv.put("k", "v", metadata={"key": "x" * (1024 - len('{"key":""}'))})
    with pytest.raises(KvError, match=r"^KV PUT failed: 413 Value length of 26214401 exceeds "
                                      r"limit of 26214400\.$"):
        await kv.put("k", b"x" * (25 * 1024 * 1024 + 1))
    with pytest.raises(TypeError, match="KV put\\(\\) accepts only strings, ArrayBuffers"):
        await kv.put("k", {"a": 1})
    with pytest.raises(TypeError, match="Unknown response type"):
        await kv.get("k", "blob")
    with pytest.raises(KvError, match=r"^KV GET failed: 400 Invalid cache_ttl of 10\. Cache TTL "
                                      r"must be at least 30\.$"):
        await kv.get("k", cacheTtl=10)
    assert await kv.get("k", cacheTtl=30) == "v"
    with pytest.raises(KvError, match=r"Invalid key_count_limit of 1001\. Please specify an "
                                      r"integer less than 1000\."):
        await kv.list(limit=1001)


async def test_expiry_follows_the_clock(kv: KvNamespace, clock: VirtualClock) -> None:
    await kv.put("ttl", "a", expirationTtl=60)
    await kv.put("at", "b", expiration=NOW_S + 120)
    await kv.put("forever", "c")
    listed = await kv.list()
    assert listed["keys"] == [{"name": "at", "expiration": NOW_S + 120}, {"name": "forever"},
                           {"name": "ttl", "expiration": NOW_S + 60}]
    clock.advance(59_999)
    assert await kv.get("ttl") == "a"
    clock.advance(1)
    assert await kv.get("ttl") is None
    assert await kv.getWithMetadata("ttl") == {"value": None, "metadata": None,
                                               "cacheStatus": None}
    assert [k.name for k in (await kv.list())["keys"]] == ["at", "forever"]
    assert await kv.get(["ttl", "at"]) == {"ttl": None, "at": "b"}
    clock.advance(60_000)
    assert await kv.get("at") is None
    assert [k.name for k in (await kv.list())["keys"]] == ["forever"]
    # an expired key can be written again
    await kv.put("ttl", "again")
    assert await kv.get("ttl") == "again"


async def test_list_sorted_bytewise_with_prefix_and_metadata(kv: KvNamespace) -> None:
    for key in ["b", "a", "é", "z", "A", ", ", "!", "\U0001f600", "ab"]:
        await kv.put(key, "v")
    names = [k.name for k in (await kv.list())["keys"]]
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))
    assert names[:3] == ["!", ", ", "A"] and names[-2:] == ["é", "\U0001f600"]
    await kv.put("user:1", "v", metadata={"role": "admin"})
    await kv.put("user:2", "v")
    await kv.put("user_3", "v")  # "_" is not a wildcard
    page = await kv.list(prefix="user:")
    assert page == {"keys": [{"name": "user:1", "metadata": {"role": "admin"}},
                             {"name": "user:2"}],
                    "list_complete": True, "cacheStatus": None}
    assert "cursor" not in page
    assert (await kv.list({"prefix": "nothing"}))["keys"] == []


async def test_list_paginates_with_stable_cursors(kv: KvNamespace) -> None:
    for i in range(7):
        await kv.put(f"p/{i}", str(i))
    await kv.put("q", "outside the prefix")
    pages, cursor = [], None
    while True:
        page = await kv.list(prefix="p/", limit=2, cursor=cursor)
        pages.append([k.name for k in page["keys"]])
        if page.list_complete:
            assert "cursor" not in page
            break
        assert isinstance(page.cursor, str)
        cursor = page.cursor
    assert pages == [["p/0", "p/1"], ["p/2", "p/3"], ["p/4", "p/5"], ["p/6"]]
    # a cursor is stable: the same cursor gives the same page, and it resumes after the last
    # key it saw (a key added before it is not returned, one added after is)
    first = await kv.list(prefix="p/", limit=2)
    await kv.put("p/0a", "x")
    await kv.put("p/1a", "y")
    again = await kv.list(prefix="p/", limit=2, cursor=first.cursor)
    assert [k.name for k in again["keys"]] == ["p/1a", "p/2"]
    assert (await kv.list(prefix="p/", limit=2, cursor=first.cursor))["keys"] == again["keys"]
    with pytest.raises(KvError, match="Invalid cursor"):
        await kv.list(cursor="%%%")


async def test_delete_and_overwrite(kv: KvNamespace) -> None:
    await kv.put("k", "1", metadata={"v": 1}, expirationTtl=600)
    await kv.put("k", "2")
    assert await kv.getWithMetadata("k") == {"value": "2", "metadata": None, "cacheStatus": None}
    assert (await kv.list())["keys"] == [{"name": "k"}]
    await kv.delete("k")
    await kv.delete("k")  # missing: nothing happens
    assert await kv.get("k") is None
    await kv.put("empty", "")
    assert await kv.get("empty") == ""


async def test_persists_across_reopen_and_second_connection_sees_writes(
        tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "kv" / "shared.sqlite"
    first = KvNamespace(path, clock)
    second = KvNamespace(path, clock)
    try:
        await first.put("k", b"\x00bytes\xff", metadata=[1, 2])
        assert await second.get("k", "arrayBuffer") == b"\x00bytes\xff"
        await second.delete("k")
        assert await first.get("k") is None
        await second.put("kept", "yes", expirationTtl=3600)
    finally:
        first.close()
        second.close()
    reopened = KvNamespace(path, clock)
    try:
        assert await reopened.getWithMetadata("kept") == {"value": "yes", "metadata": None,
                                                          "cacheStatus": None}
        assert (await reopened.list())["keys"][0].expiration == NOW_S + 3600
    finally:
        reopened.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_a_file_that_is_not_sqlite_is_a_storage_error(tmp_path: Path,
                                                             clock: VirtualClock) -> None:
    path = tmp_path / "kv" / "bad.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DamagedStateError) as caught:
        KvNamespace(path, clock)
    assert str(path) in str(caught.value)


async def test_closed_namespace_says_so(tmp_path: Path, clock: VirtualClock) -> None:
    ns = KvNamespace(tmp_path / "k.sqlite", clock)
    ns.close()
    ns.close()
    with pytest.raises(RuntimeError, match="was closed"):
        await ns.get("k")


WRITER = """
import asyncio, sys
from pathlib import Path
from workflows_emulator.bindings.kv import KvNamespace
from workflows_emulator.clock import RealClock

async def main() -> None:
    ns = KvNamespace(Path(sys.argv[1]), RealClock())
    for i in range(300):
        await ns.put(f"w/{i:03d}", "x" * 1000)
    ns.close()

asyncio.run(main())
"""


async def test_another_process_writes_while_this_one_reads(tmp_path: Path) -> None:
    path = tmp_path / "kv" / "busy.sqlite"
    reader = KvNamespace(path, VirtualClock())
    try:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        seen = 0
        while writer.poll() is None:
            await reader.put("reader", str(seen))  # writes from this side too
            listed = await reader.list(prefix="w/")
            assert [k.name for k in listed["keys"]] == [f"w/{i:03d}" for i in range(len(listed["keys"]))]
            seen = max(seen, len(listed["keys"]))
        assert writer.returncode == 0
        assert len((await reader.list(prefix="w/"))["keys"]) == 300
        assert await reader.get("w/299") == "x" * 1000
    finally:
        reader.close()


async def test_an_unusable_folder_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "kv").write_text("a file where the folder should be")
    with pytest.raises(StorageError) as caught:
        KvNamespace(tmp_path / "kv" / "ns.sqlite", VirtualClock())
    assert str(tmp_path / "kv" / "ns.sqlite") in str(caught.value)
