"""`R2Bucket`: the Workers R2 API on a real folder (SQLite metadata, body files)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workflows_emulator.bindings.kv import ByteStream
from workflows_emulator.bindings.r2 import R2Bucket, R2Error, R2Object, R2ObjectBody
from workflows_emulator.clock import VirtualClock

START_MS = 1_800_000_000_000


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start_ms=START_MS)


@pytest.fixture
def bucket(tmp_path: Path, clock: VirtualClock) -> Iterator[R2Bucket]:
    b = R2Bucket(tmp_path / "r2" / "bucket", clock)
    yield b
    b.close()


def _blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "blobs").iterdir() if not p.name.startswith("."))


async def test_put_returns_object_metadata(bucket: R2Bucket) -> None:
    obj = await bucket.put("docs/a.txt", "value", httpMetadata={"contentType": "text/plain"},
                           customMetadata={"owner": "ada", "n": 1})
    assert isinstance(obj, R2Object)
    md5 = hashlib.md5(b"value").hexdigest()
    assert (obj.key, obj.size, obj.etag, obj.httpEtag) == ("docs/a.txt", 5, md5, f'"{md5}"')
    assert obj.uploaded == datetime.fromtimestamp(START_MS / 1000, UTC)
    assert obj.uploaded.tzinfo is not None
    assert len(obj.version) == 32 and obj.version != (await bucket.put("x", "1")).version
    assert obj.httpMetadata == {"contentType": "text/plain", "contentLanguage": None,
                                "contentDisposition": None, "contentEncoding": None,
                                "cacheControl": None, "cacheExpiry": None}
    assert obj.httpMetadata.contentType == "text/plain"
    assert obj.customMetadata == {"owner": "ada", "n": "1"}  # values become strings
    assert obj.checksums.toJSON() == {"md5": md5}
    assert obj.checksums.md5 == bytes.fromhex(md5) and obj.checksums.sha1 is None
    assert obj.range is None and obj.storageClass == "Standard"
    assert obj.http_etag == obj.httpEtag and obj.custom_metadata is obj.customMetadata


async def test_get_body_methods_and_head(bucket: R2Bucket, clock: VirtualClock) -> None:
    expiry = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    await bucket.put("j", '{"a": [1, 2]}', {"httpMetadata": {"cacheExpiry": expiry,
                                                             "cacheControl": "max-age=60"}})
    clock.advance(5000)
    body = await bucket.get("j")
    assert isinstance(body, R2ObjectBody)
    assert body.range == {"offset": 0, "length": 13, "suffix": None}
    assert body.httpMetadata.cacheExpiry == expiry
    assert body.uploaded == datetime.fromtimestamp(START_MS / 1000, UTC)  # put time, not now
    assert not body.bodyUsed
    assert (await body.json()).a == [1, 2]
    assert body.bodyUsed
    with pytest.raises(TypeError, match="locked"):
        await body.text()
    assert await (await bucket.get("j")).text() == '{"a": [1, 2]}'
    assert await (await bucket.get("j")).arrayBuffer() == b'{"a": [1, 2]}'
    assert await (await bucket.get("j")).bytes() == b'{"a": [1, 2]}'
    stream = (await bucket.get("j")).body
    assert isinstance(stream, ByteStream)
    assert b"".join([c async for c in stream]) == b'{"a": [1, 2]}'
    head = await bucket.head("j")
    assert head is not None and not isinstance(head, R2ObjectBody)
    assert head.range == {"offset": 0, "length": 13, "suffix": None}
    headers: dict[str, str] = {}
    head.writeHttpMetadata(headers)
    assert headers == {"Cache-Control": "max-age=60", "Expires": "Wed, 02 Jan 2030 03:04:05 GMT"}
    assert await bucket.get("missing") is None
    assert await bucket.head("missing") is None


async def test_binary_empty_and_stream_values(bucket: R2Bucket) -> None:
    data = bytes(range(256)) * 300
    await bucket.put("bin", data)
    assert await (await bucket.get("bin")).arrayBuffer() == data
    await bucket.put("none", None)
    empty = await bucket.get("none")
    assert empty.size == 0 and await empty.text() == ""
    await bucket.put("copy", (await bucket.get("bin")).body)  # a body streams into a put
    assert (await bucket.head("copy")).etag == hashlib.md5(data).hexdigest()
    await bucket.put("", "the empty key is allowed")
    assert await (await bucket.get("")).text() == "the empty key is allowed"
    with pytest.raises(TypeError, match="parameter 2 is not of type"):
        await bucket.put("k", {"a": 1})


async def test_range_reads(bucket: R2Bucket) -> None:
    await bucket.put("k", "value")
    cases = [({"offset": 3}, "ue", 3, 2), ({"length": 3}, "val", 0, 3),
             ({"length": 42}, "value", 0, 5), ({"offset": 1, "length": 3}, "alu", 1, 3),
             ({"suffix": 3}, "lue", 2, 3), ({"suffix": 42}, "value", 0, 5)]
    for spec, text, offset, length in cases:
        body = await bucket.get("k", range=spec)
        assert await body.text() == text, spec
        assert body.range == {"offset": offset, "length": length, "suffix": None}, spec
        assert body.size == 5
    for bad in ({"offset": 42}, {"length": 0}, {"suffix": 0}):
        with pytest.raises(R2Error, match=r"^get: The requested range is not satisfiable "
                                          r"\(10039\)$"):
            await bucket.get("k", {"range": bad})
    with pytest.raises(TypeError, match="Suffix is incompatible with offset"):
        await bucket.get("k", range={"offset": 1, "suffix": 2})


async def test_only_if_conditions(bucket: R2Bucket, clock: VirtualClock) -> None:
    first = await bucket.put("k", "1")
    etag = first.etag
    past = datetime.fromtimestamp(START_MS / 1000, UTC) - timedelta(minutes=1)
    future = past + timedelta(minutes=10)
    assert await bucket.put("k", "2", onlyIf={"etagMatches": "nope"}) is None
    assert await (await bucket.get("k")).text() == "1"
    assert await bucket.put("k", "2", onlyIf={"etagDoesNotMatch": etag}) is None
    assert await bucket.put("k", "2", onlyIf={"uploadedBefore": past}) is None
    assert await bucket.put("k", "2", onlyIf={"uploadedAfter": future}) is None
    assert await bucket.put("new", "2", onlyIf={"etagMatches": etag}) is None
    assert await bucket.head("new") is None
    assert len(_blob_files(bucket.root)) == 1  # refused puts leave no body behind
    second = await bucket.put("k", "2", onlyIf={"etagMatches": f'"{etag}"'})
    assert second is not None and await (await bucket.get("k")).text() == "2"
    assert await bucket.put("k", "3", onlyIf={"uploadedAfter": past}) is not None
    # a failed condition on get gives the metadata without a body
    held = await bucket.get("k", onlyIf={"etagDoesNotMatch": "*"})
    assert isinstance(held, R2Object) and not isinstance(held, R2ObjectBody)
    assert held.key == "k"
    assert isinstance(await bucket.get("k", onlyIf={"etagMatches": "*"}), R2ObjectBody)


async def test_checksums_and_metadata_limits(bucket: R2Bucket) -> None:
    sha1 = hashlib.sha1(b"value").hexdigest()
    obj = await bucket.put("k", "value", sha1=sha1)
    assert obj.checksums.toJSON() == {"md5": hashlib.md5(b"value").hexdigest(), "sha1": sha1}
    assert (await bucket.head("k")).checksums.toJSON()["sha1"] == sha1
    bad = sha1.replace(sha1[0], "0" if sha1[0] != "0" else "1", 1)
    with pytest.raises(R2Error, match=r"^put: The SHA-1 checksum you specified did not match "
                                      r"what we received\.") as caught:
        await bucket.put("k", "value", sha1=bad)
    assert caught.value.code == 10037 and str(caught.value).endswith("(10037)")
    with pytest.raises(TypeError, match="MD5 is 32 hex characters, not 2"):
        await bucket.put("k", "value", md5="00")
    with pytest.raises(TypeError, match="multiple hashing algorithms"):
        await bucket.put("k", "value", md5=hashlib.md5(b"value").hexdigest(), sha1=sha1)
    await bucket.put("k", "value", customMetadata={"key": "x" * 8189})  # 8192 bytes
    with pytest.raises(R2Error, match=r"^put: Your metadata headers exceed the maximum allowed "
                                      r"metadata size\. \(10012\)$"):
        await bucket.put("k", "value", customMetadata={"key": "x" * 8190})
    await bucket.put("k", "value", customMetadata={"key1": "\U0001f642" * 2047})  # 8192 bytes
    with pytest.raises(R2Error, match="10012"):
        await bucket.put("k", "value", customMetadata={"key12": "\U0001f642" * 2047})
    with pytest.raises(R2Error, match=r"^head: The specified object name is not valid\. "
                                      r"\(10020\)$"):
        await bucket.head("x" * 1025)


async def test_delete_one_and_many_removes_body_files(bucket: R2Bucket) -> None:
    for key in ("a", "b", "c"):
        await bucket.put(key, key * 10)
    assert len(_blob_files(bucket.root)) == 3
    await bucket.put("a", "replaced")
    assert len(_blob_files(bucket.root)) == 3  # the replaced body is gone
    await bucket.delete("a")
    await bucket.delete(["b", "missing"])
    assert await bucket.head("a") is None and await bucket.head("b") is None
    assert await (await bucket.get("c")).text() == "c" * 10
    assert len(_blob_files(bucket.root)) == 1
    assert not [p for p in (bucket.root / "blobs").iterdir() if p.name.startswith(".tmp")]


async def test_list_pagination_start_after_and_include(bucket: R2Bucket) -> None:
    for i in range(7):
        await bucket.put(f"k{i}", f"value{i}", httpMetadata={"contentType": "text/plain"},
                         customMetadata={"i": str(i)})
    pages, cursor = [], None
    while True:
        page = await bucket.list(limit=3, cursor=cursor)
        pages.append([o.key for o in page.objects])
        assert page.delimitedPrefixes == []
        if not page.truncated:
            assert page.cursor is None
            break
        cursor = page.cursor
    assert pages == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"]]
    plain = (await bucket.list()).objects[0]
    assert plain.httpMetadata.contentType is None and plain.customMetadata == {}
    assert plain.range is None
    full = (await bucket.list(include=["httpMetadata", "customMetadata"])).objects[0]
    assert full.httpMetadata.contentType == "text/plain" and full.customMetadata == {"i": "0"}
    only_custom = (await bucket.list({"include": ["customMetadata"]})).objects[1]
    assert only_custom.httpMetadata.contentType is None and only_custom.customMetadata.i == "1"
    assert [o.key for o in (await bucket.list(startAfter="k4")).objects] == ["k5", "k6"]
    assert [o.key for o in (await bucket.list(prefix="k1")).objects] == ["k1"]
    assert (await bucket.list(cursor="not base64!")).objects == []
    for bad in (0, 1001):
        with pytest.raises(R2Error, match=r"^list: MaxKeys params must be positive integer <= "
                                          r"1000\. \(10022\)$"):
            await bucket.list(limit=bad)
    with pytest.raises(ValueError, match="Unsupported include value bogus"):
        await bucket.list(include=["bogus"])
    with pytest.raises(TypeError, match="include must be a list"):
        await bucket.list(include="httpMetadata")


async def test_list_with_delimiter(bucket: R2Bucket) -> None:
    keys = ["dir0/file0", "dir0/file1", "dir0/sub0/file2", "dir0/sub0/file3", "dir0/sub1/file4",
            "dir0/sub1/file5", "dir1/file6", "dir1/file7", "file8", "file9"]
    for key in reversed(keys):
        await bucket.put(key, key)

    async def listed(**options: object) -> tuple[list[str], list[str], bool]:
        r = await bucket.list(**options)
        return [o.key for o in r.objects], r.delimitedPrefixes, r.truncated

    assert await listed() == (keys, [], False)
    assert await listed(delimiter="") == (keys, [], False)
    assert await listed(delimiter="/") == (["file8", "file9"], ["dir0/", "dir1/"], False)
    assert await listed(prefix="dir0/", delimiter="/") == (
        ["dir0/file0", "dir0/file1"], ["dir0/sub0/", "dir0/sub1/"], False)
    assert await listed(prefix="dir0", delimiter="/") == ([], ["dir0/"], False)
    assert await listed(delimiter="file8") == ([k for k in keys if k != "file8"], ["file8"],
                                               False)
    # objects and rolled-up prefixes both count against the limit; cursors resume after a
    # rolled-up prefix's last key
    first = await bucket.list(prefix="dir0/", delimiter="/", limit=3)
    assert ([o.key for o in first.objects], first.delimitedPrefixes, first.truncated) == (
        ["dir0/file0", "dir0/file1"], ["dir0/sub0/"], True)
    rest = await bucket.list(prefix="dir0/", delimiter="/", limit=3, cursor=first.cursor)
    assert (rest.objects, rest.delimitedPrefixes, rest.truncated) == ([], ["dir0/sub1/"], False)
    seen: list[str] = []
    cursor = None
    while True:
        page = await bucket.list(delimiter="/", limit=1, cursor=cursor)
        seen += [o.key for o in page.objects] + page.delimitedPrefixes
        if not page.truncated:
            break
        cursor = page.cursor
    assert seen == ["dir0/", "dir1/", "file8", "file9"]


async def test_persists_across_reopen_and_second_connection(tmp_path: Path,
                                                            clock: VirtualClock) -> None:
    root = tmp_path / "r2" / "shared"
    first, second = R2Bucket(root, clock), R2Bucket(root, clock)
    try:
        await first.put("k", b"\x00\xff", customMetadata={"a": "b"})
        seen = await second.get("k")
        assert await seen.arrayBuffer() == b"\x00\xff" and seen.customMetadata == {"a": "b"}
        await second.put("k", "overwritten")
        assert await (await first.get("k")).text() == "overwritten"
    finally:
        first.close()
        second.close()
    again = R2Bucket(root, clock)
    try:
        obj = await again.get("k")
        assert await obj.text() == "overwritten"
        assert obj.uploaded == datetime.fromtimestamp(START_MS / 1000, UTC)
        assert [o.key for o in (await again.list()).objects] == ["k"]
    finally:
        again.close()
