"""``kv key ...`` and ``r2 object ...``: seed and inspect KV and R2 data, shaped like wrangler's.

They work on the state directory's files directly (``--persist-to``), with the wrangler
config (``-c``) to resolve ``--binding`` and bucket names; SQLite's own locking lets them run
while ``workflows-emulator dev`` serves the same files. Time is the wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ..bindings.config import KvConfig, R2Config
from ..bindings.kv import KvNamespace
from ..bindings.layout import kv_path, r2_root
from ..bindings.r2 import R2Bucket, R2ObjectBody
from ..clock import RealClock
from ..project import load_project
from .client import CliError
from .parser import DEFAULT_STATE, Subparsers

StoreFn = Callable[[argparse.Namespace], Coroutine[Any, Any, None]]


def add_store_commands(top: Subparsers) -> None:
    """Add the ``kv`` and ``r2`` command groups to the CLI's top-level subparsers."""
    where = _where()
    kv = top.add_parser("kv", help="read and write KV namespaces in the state directory")
    kv_groups = kv.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    key = kv_groups.add_parser("key", help="manage single key-value pairs")
    keys = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    namespace = _namespace_options()
    p = keys.add_parser("put", parents=[where, namespace],
                        help="write a single key/value pair to the given namespace")
    p.add_argument("key")
    p.add_argument("value", nargs="?")
    p.add_argument("--path", help="read the value from the file at this path")
    p.add_argument("--ttl", type=int, help="time for which the entry should be visible (s)")
    p.add_argument("--expiration", type=int, help="when the entry expires (s since the epoch)")
    p.add_argument("--metadata", help="arbitrary JSON that is associated with a key")
    p = keys.add_parser("get", parents=[where, namespace],
                        help="read a single value by key from the given namespace")
    p.add_argument("key")
    p.add_argument("--text", action="store_true", help="decode the value as a UTF-8 string")
    p = keys.add_parser("list", parents=[where, namespace],
                        help="output a list of all keys in a given namespace (JSON)")
    p.add_argument("--prefix", help="a prefix to filter listed keys")
    p = keys.add_parser("delete", parents=[where, namespace],
                        help="remove a single key value pair from the given namespace")
    p.add_argument("key")

    r2 = top.add_parser("r2", help="read and write R2 buckets in the state directory")
    r2_groups = r2.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    obj = r2_groups.add_parser("object", help="manage objects in a bucket")
    objects = obj.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = objects.add_parser("get", parents=[where], help="fetch an object from a bucket")
    p.add_argument("object_path", metavar="OBJECT_PATH", help="{bucket}/{key}")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-f", "--file", help="the file to write (default: the key's name)")
    out.add_argument("-p", "--pipe", action="store_true", help="write the body to stdout")
    p = objects.add_parser("put", parents=[where], help="create an object in a bucket")
    p.add_argument("object_path", metavar="OBJECT_PATH", help="{bucket}/{key}")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-f", "--file", help="the file to upload")
    src.add_argument("-p", "--pipe", action="store_true", help="read the body from stdin")
    for flag, short, field in (("--content-type", "--ct", "contentType"),
                               ("--content-disposition", "--cd", "contentDisposition"),
                               ("--content-encoding", "--ce", "contentEncoding"),
                               ("--content-language", "--cl", "contentLanguage"),
                               ("--cache-control", "--cc", "cacheControl")):
        p.add_argument(flag, short, dest=field)
    p.add_argument("--expires", help="when the object stops being cacheable (ISO 8601 date)")
    p = objects.add_parser("delete", parents=[where], help="delete an object in a bucket")
    p.add_argument("object_path", metavar="OBJECT_PATH", help="{bucket}/{key}")


def _where() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("where the data lives")
    g.add_argument("-c", "--config", help="the project's wrangler.toml / wrangler.jsonc "
                   "(default: the one in the current folder)")
    g.add_argument("--persist-to", default=DEFAULT_STATE,
                   help=f"the state directory (default {DEFAULT_STATE})")
    g.add_argument("--local", action="store_true", help="accepted: the emulator is always local")
    g.add_argument("--remote", action="store_true", help=argparse.SUPPRESS)
    return p


def _namespace_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("which namespace (one of)")
    g.add_argument("--binding", help="the namespace's binding name in the wrangler config")
    g.add_argument("--namespace-id", help="the namespace's id")
    return p


def run_store_command(args: argparse.Namespace) -> int:
    """Run a ``kv ...`` or ``r2 ...`` command; return the exit code.

    Raises:
        CliError: bad arguments or a refused operation, with what to do.
        EmulatorError: the config or a state file could not be read.
    """
    if args.remote:
        raise CliError("--remote talks to Cloudflare, which workflows-emulator does not do: "
                       "drop --remote to use the local state directory")
    command = KV_COMMANDS[args.action] if args.command == "kv" else R2_COMMANDS[args.action]
    try:
        asyncio.run(command(args))
    except (TypeError, ValueError) as exc:  # the binding's own argument checks
        raise CliError(str(exc)) from exc
    return 0


# -- kv ----------------------------------------------------------------------------------------


def _namespace(args: argparse.Namespace) -> tuple[KvNamespace, str]:
    """The namespace chosen by --binding or --namespace-id, and the name to show for it."""
    if (args.binding is None) == (args.namespace_id is None):
        raise CliError("give exactly one of --binding (a kv_namespaces binding in the wrangler "
                       "config) and --namespace-id")
    if args.namespace_id is not None:
        cfg = KvConfig(args.namespace_id, args.namespace_id)
        shown = args.namespace_id
    else:
        project = load_project(args.config)
        found = project.bindings.find_kv(args.binding)
        if found is None:
            known = ", ".join(k.binding for k in project.bindings.kv_namespaces) or "none"
            raise CliError(f'no KV namespace with binding "{args.binding}" in '
                           f"{project.config_path} (kv_namespaces: {known}); add it under "
                           "[[kv_namespaces]] or pass --namespace-id")
        cfg, shown = found, found.id
    return KvNamespace(kv_path(Path(args.persist_to), cfg), RealClock()), shown


async def _kv_put(args: argparse.Namespace) -> None:
    if (args.value is None) == (args.path is None):
        raise CliError("give the value either as an argument or with --path (not both)")
    value: str | bytes
    if args.path is not None:
        try:
            value = Path(args.path).read_bytes()
        except OSError as exc:
            raise CliError(f'cannot read "{args.path}": {exc.strerror or exc}') from exc
    else:
        value = args.value
    metadata = None
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise CliError(f"--metadata must be JSON, such as '{{\"owner\": \"ada\"}}': "
                           f"{exc}") from exc
    kv, shown = _namespace(args)
    try:
        meta = f' with metadata "{json.dumps(metadata, separators=(",", ":"))}"' if (
            metadata is not None) else ""
        if args.path is not None:
            print(f'Writing the contents of {args.path} to the key "{args.key}" on namespace '
                  f"{shown}{meta}.")
        else:
            print(f'Writing the value "{args.value}" to key "{args.key}" on namespace {shown}{meta}.')
        await kv.put(args.key, value, {"expiration": args.expiration,
                                       "expirationTtl": args.ttl, "metadata": metadata})
    finally:
        kv.close()


async def _kv_get(args: argparse.Namespace) -> None:
    kv, _ = _namespace(args)
    try:
        raw = await kv.get(args.key, "arrayBuffer")
    finally:
        kv.close()
    if raw is None:
        print("Value not found")
    elif args.text:
        print(raw.decode("utf-8", errors="replace"))
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()


async def _kv_list(args: argparse.Namespace) -> None:
    kv, _ = _namespace(args)
    keys: list[Any] = []
    try:
        cursor = None
        while True:
            page = await kv.list(prefix=args.prefix, cursor=cursor)
            keys += page["keys"]
            if page["list_complete"]:
                break
            cursor = page["cursor"]
    finally:
        kv.close()
    print(json.dumps(keys, indent=2, ensure_ascii=False))


async def _kv_delete(args: argparse.Namespace) -> None:
    kv, shown = _namespace(args)
    try:
        print(f'Deleting the key "{args.key}" on namespace {shown}.')
        await kv.delete(args.key)
    finally:
        kv.close()


KV_COMMANDS: dict[str, StoreFn] = {"put": _kv_put, "get": _kv_get, "list": _kv_list,
                                   "delete": _kv_delete}


# -- r2 ----------------------------------------------------------------------------------------


def _bucket(args: argparse.Namespace) -> tuple[R2Bucket, str, str]:
    """The bucket named by ``{bucket}/{key}`` (bucket_name or binding), its name and the key."""
    bucket_name, sep, key = args.object_path.partition("/")
    if not sep or not bucket_name:
        raise CliError(f'"{args.object_path}": the object path must be in the form of '
                       "{bucket}/{key}")
    project = load_project(args.config)
    found: R2Config | None = project.bindings.find_r2(bucket_name)
    if found is None:
        known = ", ".join(f"{r.bucket_name} ({r.binding})"
                          for r in project.bindings.r2_buckets) or "none"
        raise CliError(f'no R2 bucket "{bucket_name}" in {project.config_path} (r2_buckets: '
                       f"{known}); add it under [[r2_buckets]] or use one of those")
    return R2Bucket(r2_root(Path(args.persist_to), found), RealClock()), found.bucket_name, key


async def _r2_get(args: argparse.Namespace) -> None:
    bucket, name, key = _bucket(args)
    try:
        if not args.pipe:
            print(f'Downloading "{key}" from "{name}".')
        obj = await bucket.get(key)
    finally:
        bucket.close()
    if not isinstance(obj, R2ObjectBody):
        raise CliError("The specified key does not exist.")
    data = await obj.arrayBuffer()
    if args.pipe:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    # Without --file, the key's last part in the current folder: a key is data, and must not
    # choose where on this machine the body is written.
    target = Path(args.file) if args.file else Path(PurePosixPath(key).name or "object")
    partial = target.with_name(f".{target.name}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(f'cannot write "{target}": {exc.strerror or exc}') from exc
    print("Download complete.")


async def _r2_put(args: argparse.Namespace) -> None:
    if not args.file and not args.pipe:
        raise CliError("Either the --file or --pipe options are required.")
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise CliError(f'The file "{args.file}" does not exist.')
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f'An error occurred while trying to read the file "{args.file}": '
                           f"{exc.strerror or exc}") from exc
    else:
        data = sys.stdin.buffer.read()
    http: dict[str, Any] = {field: getattr(args, field) for field in (
        "contentType", "contentDisposition", "contentEncoding", "contentLanguage",
        "cacheControl") if getattr(args, field) is not None}
    if args.expires is not None:
        try:
            http["cacheExpiry"] = datetime.fromisoformat(args.expires)
        except ValueError as exc:
            raise CliError(f'--expires "{args.expires}" is not a date: use ISO 8601, such as '
                           "2030-01-31T12:00:00Z") from exc
    bucket, name, key = _bucket(args)
    try:
        print(f'Creating object "{key}" in bucket "{name}".')
        await bucket.put(key, data, httpMetadata=http)
    finally:
        bucket.close()
    print("Upload complete.")


async def _r2_delete(args: argparse.Namespace) -> None:
    bucket, name, key = _bucket(args)
    try:
        print(f'Deleting object "{key}" from bucket "{name}".')
        await bucket.delete(key)
    finally:
        bucket.close()
    print("Delete complete.")


R2_COMMANDS: dict[str, StoreFn] = {"get": _r2_get, "put": _r2_put, "delete": _r2_delete}
