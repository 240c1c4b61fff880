"""The binding tables of a wrangler config, parsed: what ``env`` gets besides workflows and vars.

Each emulated table becomes a tuple of frozen dataclasses on `BindingConfigs`; any other
binding table is listed in `BindingConfigs.unsupported` (table, binding name) so loading can
say which binding has no emulation and how to supply a double.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProjectConfigError

BINDING_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch
# Tables whose entries are bindings the emulator does not provide (the key naming the binding).
UNSUPPORTED_TABLES: dict[str, str] = {
    "ai": "binding", "ai_search": "binding", "ai_search_namespaces": "binding",
    "analytics_engine_datasets": "binding", "browser": "binding",
    "dispatch_namespaces": "binding", "hyperdrive": "binding", "images": "binding",
    "media": "binding", "mtls_certificates": "binding", "pipelines": "binding",
    "queues": "binding", "ratelimits": "name", "secrets_store_secrets": "binding",
    "send_email": "name", "vectorize": "binding", "version_metadata": "binding",
    "worker_loaders": "binding", "vpc_services": "binding", "artifacts": "binding",
    "agent_memory": "binding", "flagship": "binding", "stream": "binding",
}


@dataclass(frozen=True)
class KvConfig:
    """One ``[[kv_namespaces]]`` entry; ``id`` names its file (the binding when absent)."""

    binding: str
    id: str


@dataclass(frozen=True)
class D1Config:
    """One ``[[d1_databases]]`` entry; ``migrations_dir`` is absolute."""

    binding: str
    database_name: str
    database_id: str
    migrations_dir: Path


@dataclass(frozen=True)
class R2Config:
    """One ``[[r2_buckets]]`` entry."""

    binding: str
    bucket_name: str


@dataclass(frozen=True)
class DurableObjectConfig:
    """One ``[[durable_objects.bindings]]`` entry: a class of this project's ``main``."""

    binding: str
    class_name: str


@dataclass(frozen=True)
class ServiceConfig:
    """One ``[[services]]`` entry; ``entrypoint`` None means the default export."""

    binding: str
    service: str
    entrypoint: str | None


@dataclass(frozen=True)
class BindingConfigs:
    """Every binding table of the config the emulator knows about."""

    kv_namespaces: tuple[KvConfig, ...] = ()
    d1_databases: tuple[D1Config, ...] = ()
    r2_buckets: tuple[R2Config, ...] = ()
    durable_objects: tuple[DurableObjectConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    unsupported: tuple[tuple[str, str], ...] = ()  # (table, binding name)

    def names(self) -> list[str]:
        """Every binding name, emulated or not, in config order."""
        return [b.binding for group in (self.kv_namespaces, self.d1_databases, self.r2_buckets,
                                        self.durable_objects, self.services) for b in group] + [
            name for _, name in self.unsupported]

    def find_kv(self, name: str) -> KvConfig | None:
        """The KV namespace bound as ``name`` (or with that id)."""
        return next((k for k in self.kv_namespaces if name in (k.binding, k.id)), None)

    def find_d1(self, name: str) -> D1Config | None:
        """The D1 database bound as ``name`` (or with that database_name/id)."""
        return next((d for d in self.d1_databases
                     if name in (d.binding, d.database_name, d.database_id)), None)

    def find_r2(self, name: str) -> R2Config | None:
        """The R2 bucket bound as ``name`` (or with that bucket_name)."""
        return next((r for r in self.r2_buckets if name in (r.binding, r.bucket_name)), None)


def parse_bindings(cfg: Path, data: dict[str, Any]) -> BindingConfigs:
    """The binding tables of the config ``data`` read from ``cfg``.

    Raises:
        ProjectConfigError: a malformed entry, named by table and position, with the fix.
    """
    kv = tuple(KvConfig(b, _opt_str(cfg, raw, "id", where) or b)
               for b, raw, where in _entries(cfg, data, "kv_namespaces"))
    d1 = tuple(
        D1Config(b, _opt_str(cfg, raw, "database_name", where) or b,
                 _opt_str(cfg, raw, "database_id", where)
                 or _opt_str(cfg, raw, "database_name", where) or b,
                 (cfg.parent / (_opt_str(cfg, raw, "migrations_dir", where)
                                or "migrations")).resolve())
        for b, raw, where in _entries(cfg, data, "d1_databases"))
    r2 = tuple(R2Config(b, _opt_str(cfg, raw, "bucket_name", where) or b.lower())
               for b, raw, where in _entries(cfg, data, "r2_buckets"))
    dos = []
    raw_do = data.get("durable_objects")
    if raw_do is not None:
        if not isinstance(raw_do, dict):
            raise ProjectConfigError(
                f'{cfg}: key "durable_objects" must be a table with a "bindings" list; fix it')
        for b, raw, where in _entries(cfg, raw_do, "bindings", "durable_objects.bindings"):
            if raw.get("script_name"):
                raise ProjectConfigError(
                    f'{cfg}: {where} key "script_name" binds a Durable Object of another '
                    "Worker, which the emulator cannot run; remove script_name or supply a "
                    "double for it (see the README's Bindings section)")
            dos.append(DurableObjectConfig(b, _need(cfg, raw, "class_name", where)))
    services = tuple(
        ServiceConfig(b, _need(cfg, raw, "service", where),
                      _opt_str(cfg, raw, "entrypoint", where))
        for b, raw, where in _entries(cfg, data, "services"))
    unsupported = []
    for table, key in UNSUPPORTED_TABLES.items():
        raw_t = data.get(table)
        items = raw_t if isinstance(raw_t, list) else [raw_t] if isinstance(raw_t, dict) else []
        for raw in items:
            if isinstance(raw, dict) and isinstance(raw.get(key), str):
                unsupported.append((table, raw[key]))
    configs = BindingConfigs(kv, d1, r2, tuple(dos), services, tuple(unsupported))
    _check_unique(cfg, configs)
    return configs


def _entries(cfg: Path, data: dict[str, Any], table: str,
             shown: str | None = None) -> list[tuple[str, dict[str, Any], str]]:
    raw = data.get(table)
    label = shown or table
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProjectConfigError(f'{cfg}: key "{label}" must be a list ([[{label}]]); fix it')
    out = []
    for index, entry in enumerate(raw):
        where = f"[[{label}]] entry #{index + 1}"
        if not isinstance(entry, dict):
            raise ProjectConfigError(f"{cfg}: {where} must be a table; fix the entry")
        binding = _need(cfg, entry, "binding" if table != "bindings" else "name", where)
        if not BINDING_PATTERN.fullmatch(binding):
            raise ProjectConfigError(
                f"{cfg}: {where} binding {binding!r} is not a valid binding name; use a Python "
                "identifier such as MY_BINDING (it becomes env.MY_BINDING)")
        out.append((binding, entry, where))
    return out


def _need(cfg: Path, raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        got = "nothing" if value is None else repr(value)
        raise ProjectConfigError(
            f'{cfg}: {where} should have a string "{key}" field but got {got}; add it')
    return value


def _opt_str(cfg: Path, raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ProjectConfigError(
            f'{cfg}: {where} key "{key}" = {value!r} must be a non-empty string; fix it')
    return value


def _check_unique(cfg: Path, configs: BindingConfigs) -> None:
    seen: set[str] = set()
    for name in configs.names():
        if name in seen:
            raise ProjectConfigError(
                f'{cfg}: binding "{name}" is declared twice; give each binding its own name')
        seen.add(name)
