"""``kv key ...`` and ``r2 object ...`` through `main` on a temp project's state directory."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from worker_projects import ONE_WORKFLOW_TOML, write_worker_project
from workflows_emulator.bindings.config import KvConfig, R2Config
from workflows_emulator.bindings.kv import KvNamespace
from workflows_emulator.bindings.layout import kv_path, r2_root
from workflows_emulator.bindings.r2 import R2Bucket
from workflows_emulator.cli.commands import main
from workflows_emulator.clock import RealClock

BINDINGS_TOML = """
[[kv_namespaces]]
binding = "CACHE"
id = "cache-ns"

[[r2_buckets]]
binding = "IMAGES"
bucket_name = "images-bucket"
"""

ENTRY = """
from workers import WorkflowEntrypoint

class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return None
"""


@pytest.fixture
def project(tmp_path: Path) -> list[str]:
    config = write_worker_project(tmp_path / "proj", ENTRY)
    config.write_text(ONE_WORKFLOW_TOML + BINDINGS_TOML)
    return ["-c", str(config), "--persist-to", str(tmp_path / "state")]


def _state(where: list[str]) -> Path:
    return Path(where[where.index("--persist-to") + 1])


def test_kv_put_get_list_delete_round_trip(project: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kv", "key", "put", "user:1", "ada", "--binding", "CACHE", "--metadata",
                 '{"role": "admin"}', "--ttl", "3600", *project]) == 0
    assert capsys.readouterr().out == ('Writing the value "ada" to key "user:1" on namespace '
                                       'cache-ns with metadata "{"role":"admin"}".\n')
    assert main(["kv", "key", "put", "user:2", "bob", "--binding", "CACHE", "--local",
                 *project]) == 0
    assert main(["kv", "key", "put", "other", "x", "--namespace-id", "cache-ns",
                 *project]) == 0
    capsys.readouterr()
    assert main(["kv", "key", "get", "user:1", "--binding", "CACHE", "--text", *project]) == 0
    assert capsys.readouterr().out == "ada\n"
    assert main(["kv", "key", "list", "--binding", "CACHE", "--prefix", "user:", *project]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in listed] == ["user:1", "user:2"]
    assert listed[0]["metadata"] == {"role": "admin"}
    assert isinstance(listed[0]["expiration"], int) and "expiration" not in listed[1]
    assert main(["kv", "key", "delete", "user:1", "--binding", "CACHE", *project]) == 0
    assert capsys.readouterr().out == 'Deleting the key "user:1" on namespace cache-ns.\n'
    assert main(["kv", "key", "get", "user:1", "--binding", "CACHE", *project]) == 0
    assert capsys.readouterr().out == "Value not found\n"
    # the data is where the dev server's binding reads it
    ns = KvNamespace(kv_path(_state(project), KvConfig("CACHE", "cache-ns")), RealClock())
    try:
        assert asyncio.run(ns.get("user:2")) == "bob"
        assert asyncio.run(ns.get("other")) == "x"
    finally:
        ns.close()


def test_kv_put_from_file_and_binary_get(project: list[str], tmp_path: Path,
                                         capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    assert main(["kv", "key", "put", "bin", "--path", str(blob), "--binding", "CACHE",
                 *project]) == 0
    assert b"Writing the contents of" in capsysbinary.readouterr().out
    assert main(["kv", "key", "get", "bin", "--binding", "CACHE", *project]) == 0
    assert capsysbinary.readouterr().out == bytes(range(256))


@pytest.mark.parametrize(("argv", "message"), [
    (["kv", "key", "get", "k"], "give exactly one of --binding"),
    (["kv", "key", "get", "k", "--binding", "NOPE"], 'no KV namespace with binding "NOPE"'),
    (["kv", "key", "put", "k", "--binding", "CACHE"], "give the value either as an argument"),
    (["kv", "key", "put", "k", "v", "--binding", "CACHE", "--metadata", "{bad"],
     "--metadata must be JSON"),
    (["kv", "key", "put", "k", "v", "--binding", "CACHE", "--ttl", "5"],
     "Invalid expiration_ttl of 5. Expiration TTL must be at least 60."),
    (["kv", "key", "put", "", "v", "--binding", "CACHE"], "Key name cannot be empty."),
    (["kv", "key", "list", "--binding", "CACHE", "--remote"], "--remote talks to Cloudflare"),
    (["r2", "object", "get", "no-slash"], "must be in the form of {bucket}/{key}"),
    (["r2", "object", "get", "unknown/k", "--pipe"], 'no R2 bucket "unknown"'),
    (["r2", "object", "get", "images-bucket/missing", "--pipe"],
     "The specified key does not exist."),
    (["r2", "object", "put", "images-bucket/k"], "Either the --file or --pipe options are "
                                                 "required."),
    (["r2", "object", "put", "images-bucket/k", "--file", "/nonexistent/file"],
     'The file "/nonexistent/file" does not exist.'),
])
def test_errors_are_reported_with_the_fix(project: list[str], argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, *project]) == 1
    err = capsys.readouterr().err
    assert err.startswith("✘ [ERROR] ") and message in err, err


def test_r2_put_get_delete_round_trip(project: list[str], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["r2", "object", "put", "images-bucket/cats/1.jpg", "--file", str(photo),
                 "--content-type", "image/jpeg", "--cc", "max-age=60", *project]) == 0
    assert capsys.readouterr().out == ('Creating object "cats/1.jpg" in bucket '
                                       '"images-bucket".\nUpload complete.\n')
    # by binding name too, and from stdin with --pipe
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"piped body")))
    assert main(["r2", "object", "put", "IMAGES/notes.txt", "--pipe", *project]) == 0
    capsys.readouterr()
    out = tmp_path / "out" / "copy.jpg"
    assert main(["r2", "object", "get", "images-bucket/cats/1.jpg", "--file", str(out),
                 *project]) == 0
    assert capsys.readouterr().out == ('Downloading "cats/1.jpg" from "images-bucket".\n'
                                       "Download complete.\n")
    assert out.read_bytes() == photo.read_bytes()
    # without --file: the key's last part, in the current folder, never where the key points
    monkeypatch.chdir(tmp_path / "out")
    assert main(["r2", "object", "get", "images-bucket/cats/1.jpg", *project]) == 0
    assert (tmp_path / "out" / "1.jpg").read_bytes() == photo.read_bytes()
    assert not (tmp_path / "out" / "cats").exists()
    capsys.readouterr()
    bucket = R2Bucket(r2_root(_state(project), R2Config("IMAGES", "images-bucket")), RealClock())
    try:
        head = asyncio.run(bucket.head("cats/1.jpg"))
        assert head is not None and head.httpMetadata.contentType == "image/jpeg"
        assert head.httpMetadata.cacheControl == "max-age=60"
        assert asyncio.run(asyncio.run(bucket.get("notes.txt")).text()) == "piped body"
    finally:
        bucket.close()
    assert main(["r2", "object", "delete", "images-bucket/cats/1.jpg", *project]) == 0
    assert capsys.readouterr().out == ('Deleting object "cats/1.jpg" from bucket '
                                       '"images-bucket".\nDelete complete.\n')
    assert main(["r2", "object", "get", "images-bucket/cats/1.jpg", "--pipe", *project]) == 1


def test_r2_get_pipe_writes_the_body_to_stdout(project: list[str], tmp_path: Path,
                                               capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    body = tmp_path / "b.bin"
    body.write_bytes(b"\x00\x01binary\xff")
    assert main(["r2", "object", "put", "images-bucket/b.bin", "-f", str(body), *project]) == 0
    capsysbinary.readouterr()
    assert main(["r2", "object", "get", "images-bucket/b.bin", "--pipe", *project]) == 0
    assert capsysbinary.readouterr().out == b"\x00\x01binary\xff"
