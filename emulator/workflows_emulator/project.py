"""Loads a Worker project (``wrangler.toml`` / ``wrangler.jsonc``) and runs it on an `Emulator`.

Example:
    >>> project = load_project("examples/transfer-project/wrangler.toml")   # doctest: +SKIP
    >>> async with open_runtime(project, ".wf-state", clock="real") as rt:
    ...     inst = await rt.workflows["transfer"].create(params={"amount": 10})
"""

from __future__ import annotations

import contextlib
import re
import sys
import tomllib
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import workflows_saga

from .bindings.config import BindingConfigs, parse_bindings
from .errors import ProjectConfigError
from .state_lock import StateLock
from .values import ID_PATTERN, MAX_NAME

if TYPE_CHECKING:
    from .bindings.doubles import DoublesSource
    from .bindings.project_bindings import ProjectBindings
    from .emulator import Emulator, Workflow

CONFIG_NAMES = ("wrangler.toml", "wrangler.jsonc", "wrangler.json")
BINDING_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch
_JSON5_ERROR = re.compile(r"<string>:(?P<line>\d+) (?P<msg>.*) at column (?P<col>\d+)", re.S)
PYTHON_WORKFLOWS_IMPLIED = "2025-09-20"
MIN_WORKFLOWS_DATE = "2024-10-22"
PRODUCTION_MAX_STEPS = 25_000


IMPLICIT_DEPENDENCIES_DATE = "2026-02-25"

# The keys wrangler 4.164 knows (its config-schema.json: RawConfig, WorkflowBinding), plus a few
# older ones wrangler still reads with a deprecation notice. Any other key is a typo or a
# setting of another tool: it is reported, with the closest known key.
TOP_LEVEL_KEYS = frozenset({
    "$schema", "access", "account_id", "addresses", "agent_memory", "ai", "ai_search",
    "ai_search_namespaces", "alias", "analytics", "analytics_engine_datasets", "artifacts",
    "assets", "base_dir", "browser", "build", "cache", "cloudchamber", "compatibility_date",
    "compatibility_flags", "compliance_region", "connect", "containers", "d1_databases",
    "data_blobs", "define", "dependencies_instrumentation", "dev", "dispatch_namespaces",
    "durable_objects", "env", "exports", "find_additional_modules", "first_party_worker",
    "flagship", "hyperdrive", "images", "jsx_factory", "jsx_fragment", "k2", "keep_names",
    "keep_vars", "kv_namespaces", "limits", "logfwdr", "logpush", "main", "media", "migrations",
    "minify", "mtls_certificates", "name", "no_bundle", "observability",
    "pages_build_output_dir", "pipelines", "placement", "preserve_file_names", "preview_urls",
    "previews", "python_modules", "queues", "r2_buckets", "ratelimits", "route", "routes",
    "rules", "secrets", "secrets_store_secrets", "send_email", "send_metrics", "services",
    "site", "stream", "streaming_tail_consumers", "tail_consumers", "text_blobs", "triggers",
    "tsconfig", "unsafe", "unsafe_hello_world", "upload_source_maps", "vars", "vectorize",
    "version_metadata", "vpc_networks", "vpc_services", "wasm_modules", "worker_loaders",
    "workers_dev", "workflows",
    # deprecated, still read
    "legacy_env", "node_compat", "usage_model", "zone_id",
})
WORKFLOW_KEYS = frozenset({"binding", "class_name", "concurrency", "default_retention",
                           "jurisdiction", "limits", "name", "schedules", "script_name"})
WORKFLOW_LIMITS_KEYS = frozenset({"steps"})
# The keys of the emulated binding tables' entries (wrangler's config schema).
_REMOTE = {"experimental_remote", "remote"}
BINDING_ENTRY_KEYS: dict[str, frozenset[str]] = {
    "kv_namespaces": frozenset({"binding", "id", "preview_id", *_REMOTE}),
    "d1_databases": frozenset({"binding", "database_name", "database_id", "preview_database_id",
                               "migrations_dir", "migrations_table", "database_internal_env",
                               *_REMOTE}),
    "r2_buckets": frozenset({"binding", "bucket_name", "preview_bucket_name", "jurisdiction",
                             *_REMOTE}),
    "services": frozenset({"binding", "service", "entrypoint", "environment", "props",
                           *_REMOTE}),
    "durable_objects.bindings": frozenset({"name", "class_name", "script_name",
                                           "environment"}),
}


@dataclass(frozen=True)
class WorkflowConfig:
    """One ``[[workflows]]`` entry."""

    name: str
    binding: str
    class_name: str
    step_limit: int | None = None


@dataclass(frozen=True)
class Project:
    """A parsed wrangler config: where the code is and what it binds."""

    config_path: Path
    name: str
    main: Path
    compatibility_date: str
    compatibility_flags: tuple[str, ...]
    workflows: tuple[WorkflowConfig, ...]
    vars: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    bindings: BindingConfigs = field(default_factory=BindingConfigs)

    @property
    def implicit_dependencies(self) -> bool:
        """Whether ``@step.do`` resolves dependencies by parameter name (the compat flag
        ``python_workflows_implicit_dependencies``, implied from 2026-02-25)."""
        flags = set(self.compatibility_flags)
        if "no_python_workflows_implicit_dependencies" in flags:
            return False
        if "python_workflows_implicit_dependencies" in flags:
            return True
        return self.compatibility_date >= IMPLICIT_DEPENDENCIES_DATE

    @property
    def root(self) -> Path:
        """The folder holding the wrangler file."""
        return self.config_path.parent

    def workflow(self, name: str) -> WorkflowConfig:
        """The ``[[workflows]]`` entry called ``name``."""
        for wf in self.workflows:
            if wf.name == name:
                return wf
        known = ", ".join(w.name for w in self.workflows) or "none"
        raise ProjectConfigError(
            f'{self.config_path}: no workflow named "{name}" in [[workflows]] (known: {known}); '
            "check the name or add a [[workflows]] entry"
        )


def find_config(path: str | Path | None) -> Path:
    """The wrangler file ``path`` names (a file or a folder), or the one in the cwd."""
    base = Path(path) if path is not None else Path.cwd()
    if base.is_dir():
        for candidate in CONFIG_NAMES:
            if (base / candidate).is_file():
                return base / candidate
        raise ProjectConfigError(
            f"{base}: no wrangler.toml or wrangler.jsonc here; pass --config path/to/wrangler.toml"
        )
    if not base.is_file():
        raise ProjectConfigError(f"{base}: file not found; pass --config path/to/wrangler.toml")
    return base


def _read_raw(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            import json5  # only for a wrangler.jsonc / wrangler.json

            data = json5.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectConfigError(f"{path}: malformed TOML: {exc}; fix the syntax") from exc
    except ValueError as exc:  # json5's errors: "<string>:LINE MESSAGE at column COL"
        found = _JSON5_ERROR.fullmatch(str(exc))
        where = (f"line {found['line']} column {found['col']}: {_json5_reason(found['msg'])}"
                 if found else str(exc))
        raise ProjectConfigError(f"{path}: malformed JSON at {where}; fix the syntax") from exc
    if not isinstance(data, dict):
        raise ProjectConfigError(f"{path}: the top level must be an object; fix the file")
    return data


def _json5_reason(message: str) -> str:
    """json5's ``Unexpected "X"`` (a quote shows as three) as ``unexpected 'X'``."""
    found = re.fullmatch(r'Unexpected "(.+)"', message, re.S)
    return f"unexpected {found[1]!r}" if found else message[:1].lower() + message[1:]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ProjectConfigError(
            f"{path}: not valid UTF-8 at byte {exc.start} (line {line}): {exc.reason}; save "
            "the file as UTF-8"
        ) from exc
    return text.removeprefix("\ufeff")  # a byte order mark, as some editors write


def _need_str(path: Path, data: dict[str, Any], key: str, where: str, fix: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        got = "nothing" if value is None else repr(value)
        raise ProjectConfigError(
            f'{path}: {where} should have a string "{key}" field but got {got}; {fix}'
        )
    return value


def _unknown_keys(table: dict[str, Any], known: frozenset[str], where: str) -> list[str]:
    """A warning for each key of ``table`` wrangler does not know, with the closest known one."""
    found = []
    for key in table:
        if key in known:
            continue
        import difflib  # only for a key wrangler does not know

        close = difflib.get_close_matches(str(key), known, n=1)
        hint = (f'did you mean "{close[0]}"?' if close
                else "wrangler does not know it and the emulator ignores it")
        found.append(f'unknown key "{key}" in {where}; {hint}')
    return found


def _config_warnings(cfg: Path, data: dict[str, Any]) -> list[str]:
    found = _unknown_keys(data, TOP_LEVEL_KEYS, str(cfg))
    raw_wfs = data.get("workflows")
    for index, raw in enumerate(raw_wfs if isinstance(raw_wfs, list) else []):
        if not isinstance(raw, dict):
            continue
        where = f"[[workflows]] entry #{index + 1} of {cfg}"
        found += _unknown_keys(raw, WORKFLOW_KEYS, where)
        if isinstance(raw.get("limits"), dict):
            found += _unknown_keys(raw["limits"], WORKFLOW_LIMITS_KEYS,
                                   f"[workflows.limits] of {where}")
    for table, known in BINDING_ENTRY_KEYS.items():
        parent = data.get("durable_objects") if table == "durable_objects.bindings" else data
        entries = parent.get(table.rsplit(".", 1)[-1]) if isinstance(parent, dict) else None
        for index, raw in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(raw, dict):
                found += _unknown_keys(raw, known, f"[[{table}]] entry #{index + 1} of {cfg}")
    return found


def _parse_workflow(path: Path, index: int, raw: object) -> WorkflowConfig:
    where = f"[[workflows]] entry #{index + 1}"
    if not isinstance(raw, dict):
        raise ProjectConfigError(f"{path}: {where} must be a table; fix the entry")
    name = _need_str(path, raw, "name", where, 'add name = "my-workflow"')
    if len(name) > MAX_NAME or not ID_PATTERN.fullmatch(name):
        raise ProjectConfigError(
            f'{path}: {where} key "name" = {name!r} is invalid; use 1-{MAX_NAME} characters '
            "from a-z, A-Z, 0-9, '-' and '_', not starting with '-'"
        )
    binding = _need_str(path, raw, "binding", where, 'add binding = "MY_WORKFLOW"')
    if not BINDING_PATTERN.fullmatch(binding):
        raise ProjectConfigError(
            f'{path}: {where} key "binding" = {binding!r} is not a valid binding name; use a '
            "Python identifier such as MY_WORKFLOW (it becomes env.MY_WORKFLOW)"
        )
    class_name = _need_str(path, raw, "class_name", where,
                           'add class_name = "MyWorkflow" (the class exported by main)')
    if raw.get("script_name"):
        raise ProjectConfigError(
            f'{path}: {where} key "script_name" binds a workflow of another Worker, which the '
            "emulator cannot run; remove script_name and run that Worker's own project"
        )
    limits = raw.get("limits") or {}
    steps = limits.get("steps") if isinstance(limits, dict) else None
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ProjectConfigError(
            f'{path}: {where} key "limits.steps" = {steps!r} must be a positive integer; '
            "fix [workflows.limits] steps"
        )
    return WorkflowConfig(name, binding, class_name, steps)


def load_project(path: str | Path | None = None) -> Project:
    """Parse and check a wrangler config (a file, or a folder holding one).

    Raises:
        ProjectConfigError: the message names the file, the key and the fix.
    """
    cfg = find_config(path).resolve()
    data = _read_raw(cfg)
    unknown = _config_warnings(cfg, data)
    try:
        return _checked(cfg, data, unknown)
    except ProjectConfigError as exc:
        if not unknown:
            raise
        # a misspelt key often is the cause: "compatability_date" leaves the date unset
        raise ProjectConfigError(f"{exc}. Also: {'; '.join(unknown)}") from exc


def _checked(cfg: Path, data: dict[str, Any], unknown: list[str]) -> Project:
    main_s = _need_str(cfg, data, "main", "the config", 'add main = "src/entry.py"')
    main = (cfg.parent / main_s).resolve()
    if main.is_dir():
        raise ProjectConfigError(
            f'{cfg}: key "main" = {main_s!r} points at {main}, which is a folder; point "main" '
            'at the Worker\'s entry .py file, such as "src/entry.py"'
        )
    if not main.is_file():
        raise ProjectConfigError(
            f'{cfg}: key "main" = {main_s!r} points at {main}, which does not exist; fix the path'
        )
    date = data.get("compatibility_date", "")
    if not isinstance(date, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date):
        raise ProjectConfigError(
            f'{cfg}: key "compatibility_date" = {date!r} must be a date like "2025-10-01"; '
            "set it"
        )
    flags = data.get("compatibility_flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ProjectConfigError(
            f'{cfg}: key "compatibility_flags" must be a list of strings; fix it'
        )
    if main.suffix == ".py" and "python_workers" not in flags:
        raise ProjectConfigError(
            f'{cfg}: key "compatibility_flags": `python_workers` compat flag not specified in '
            'wrangler config; add "python_workers" to compatibility_flags'
        )
    raw_wfs = data.get("workflows", [])
    if not isinstance(raw_wfs, list):
        raise ProjectConfigError(f'{cfg}: key "workflows" must be a list ([[workflows]]); fix it')
    workflows = tuple(_parse_workflow(cfg, i, raw) for i, raw in enumerate(raw_wfs))
    _check_workflows(cfg, workflows, date, flags)
    vars_ = data.get("vars", {})
    if not isinstance(vars_, dict):
        raise ProjectConfigError(f'{cfg}: key "vars" must be a table of NAME = value; fix it')
    vars_ = {**vars_, **_dev_vars(cfg.parent)}
    bindings = parse_bindings(cfg, data)
    for key in vars_:
        if any(w.binding == key for w in workflows) or key in bindings.names():
            raise ProjectConfigError(
                f'{cfg}: key "vars.{key}" has the same name as a binding; rename one'
            )
    for bound in bindings.names():
        if any(w.binding == bound for w in workflows):
            raise ProjectConfigError(
                f'{cfg}: binding "{bound}" is declared twice; give each binding its own name')
    warnings = (*unknown, *(
        f'{cfg}: [workflows.limits] steps = {w.step_limit} for "{w.name}" exceeds the '
        f"production maximum of {PRODUCTION_MAX_STEPS:,}"
        for w in workflows if w.step_limit and w.step_limit > PRODUCTION_MAX_STEPS
    ))
    name = data.get("name") if isinstance(data.get("name"), str) else cfg.parent.name
    return Project(cfg, str(name), main, date, tuple(flags), workflows, dict(vars_), warnings,
                   bindings)


DEV_VARS_FILES = (".dev.vars", ".env")


def _dev_vars(root: Path) -> dict[str, str]:
    """Local secrets as ``wrangler dev`` reads them: ``.dev.vars`` beside the config, else
    ``.env``; they override ``[vars]`` of the same name."""
    for name in DEV_VARS_FILES:
        path = root / name
        if path.is_file():
            from dotenv import dotenv_values  # only when there is a file to read

            return {k: v for k, v in dotenv_values(path).items() if v is not None}
    return {}


def _check_workflows(cfg: Path, workflows: tuple[WorkflowConfig, ...], date: str,
                     flags: list[str]) -> None:
    seen_names: set[str] = set()
    seen_bindings: set[str] = set()
    for wf in workflows:
        if wf.name in seen_names:
            raise ProjectConfigError(
                f'{cfg}: [[workflows]] name "{wf.name}" is used twice; give each a unique name'
            )
        if wf.binding in seen_bindings:
            raise ProjectConfigError(
                f'{cfg}: [[workflows]] binding "{wf.binding}" is used twice; give each workflow '
                "its own binding"
            )
        seen_names.add(wf.name)
        seen_bindings.add(wf.binding)
    if not workflows:
        return
    if date < MIN_WORKFLOWS_DATE:
        raise ProjectConfigError(
            f'{cfg}: key "compatibility_date" = "{date}": Workflows need a compatibility date '
            f"of {MIN_WORKFLOWS_DATE} or later; raise it"
        )
    if "disable_python_workflows" in flags or (
        date < PYTHON_WORKFLOWS_IMPLIED and "python_workflows" not in flags
    ):
        raise ProjectConfigError(
            f'{cfg}: key "compatibility_flags": Python Workflows need the "python_workflows" '
            f"flag (implied by python_workers from {PYTHON_WORKFLOWS_IMPLIED}); add it"
        )


# -- importing the entry module -----------------------------------------------------------------


@contextlib.contextmanager
def project_imports(project: Project) -> Iterator[None]:
    """Put the project's folders on ``sys.path`` and the ``workers`` stand-in in sys.modules.

    On exit the project's own modules leave ``sys.modules`` too, so the next project loaded
    in this process imports its own ``config.py`` or ``lib/``, not this one's.
    """
    from .workers_shim.install import installed

    folders = [project.main.parent, project.root]
    vendored = project.root / "python_modules"
    if vendored.is_dir():
        folders.append(vendored)
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    before = set(sys.modules)
    try:
        with installed(implicit_dependencies=project.implicit_dependencies):
            yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
        for name in set(sys.modules) - before:
            found = getattr(sys.modules.get(name), "__file__", None)
            if found and Path(found).is_relative_to(project.root):
                del sys.modules[name]


def import_entry(project: Project) -> ModuleType:
    """Import the ``main`` module (call inside `project_imports`)."""
    import importlib.util  # not for the commands that only read the state

    mod_name = f"_wf_entry_{abs(hash(str(project.main)))}"
    spec = importlib.util.spec_from_file_location(mod_name, project.main)
    if spec is None or spec.loader is None:
        raise ProjectConfigError(f'{project.config_path}: key "main": cannot import {project.main}')
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # SystemExit: sys.exit() must not end the emulator
        sys.modules.pop(mod_name, None)
        raise ProjectConfigError(_import_failure(project, exc)) from exc
    for wf in project.workflows:
        cls = getattr(module, wf.class_name, None)
        if not isinstance(cls, type) or not callable(getattr(cls, "run", None)):
            raise ProjectConfigError(
                f'{project.config_path}: [[workflows]] "{wf.name}" key "class_name" = '
                f'"{wf.class_name}", but {project.main.name} defines no such class with a '
                f"run(self, event, step) method; export class {wf.class_name}(WorkflowEntrypoint) "
                "or fix class_name"
            )
    return module


def _import_failure(project: Project, exc: BaseException) -> str:
    """What failed while importing ``main``: where (the user's file and line) and why."""
    if isinstance(exc, SyntaxError):
        where = f"{_shown(project, exc.filename or str(project.main))}:{exc.lineno}"
        why = f"{type(exc).__name__}: {exc.msg}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_users(project, f)]
        where = (f"{_shown(project, frames[-1].filename)}:{frames[-1].lineno}" if frames
                 else _shown(project, str(project.main)))
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    fix = ("fix the module: it must not call sys.exit() when imported"
           if isinstance(exc, SystemExit) else "fix the module")
    return (f'{project.config_path}: key "main": importing {_shown(project, str(project.main))} '
            f"failed at {where}: {why}; {fix}")


def _is_users(project: Project, frame: traceback.FrameSummary) -> bool:
    """Whether ``frame`` runs the project's own code (not vendored packages, not ours)."""
    path = Path(frame.filename)
    if not path.is_absolute() or not path.is_relative_to(project.root):
        return False
    ours = (Path(__file__).parent, Path(workflows_saga.__file__).parent,
            project.root / "python_modules")
    installed = {"site-packages", "dist-packages"} & set(path.parts)  # e.g. a .venv in the root
    return not installed and not any(path.is_relative_to(p) for p in ours)


def _shown(project: Project, filename: str) -> str:
    """``filename`` relative to the project's folder when it is inside it."""
    path = Path(filename)
    return str(path.relative_to(project.root)) if path.is_relative_to(project.root) else filename


# -- the running project ---------------------------------------------------------------------


@dataclass
class Runtime:
    """A project running on an emulator: its module, env and workflow bindings."""

    project: Project
    emulator: Emulator
    module: ModuleType
    env: Any
    workflows: dict[str, Workflow]
    bindings: ProjectBindings | None = None


@contextlib.contextmanager
def open_runtime_sync(project: Project, state_dir: str | Path, *, clock: str = "real",
                      lock: StateLock | None = None,
                      doubles: DoublesSource = None,
                      determinism: str = "warn") -> Iterator[Runtime]:
    """Load ``project`` on a new `Emulator` without starting any instance (no event loop).

    Use it for reads, or to run only the instances you drive. Its files are closed on exit;
    instances started meanwhile must be stopped first with ``await emulator.close()``.
    ``lock`` is this process's lock on ``state_dir`` if taken already (see `Emulator`).
    ``doubles`` replace or supply bindings (a mapping or a doubles module; see
    `bindings.doubles`); by default ``emulator_doubles.py`` beside the wrangler file, if any.
    ``determinism``: what a replay that meets other steps than the log does (see
    `replay_guard`); a warning by default, as in development.
    """
    from .bindings.doubles import load_doubles  # the Worker shim: not for a read-only command
    from .bindings.project_bindings import ProjectBindings
    from .emulator import Emulator
    from .workers_shim.env import ExecutionContext, make_env

    with project_imports(project):
        module = import_entry(project)
        limits = {w.step_limit for w in project.workflows if w.step_limit}
        emu = Emulator(state_dir, clock=clock, step_limit=max(limits) if limits else 10_000,
                       compatibility_date=project.compatibility_date,
                       compatibility_flags=project.compatibility_flags, lock=lock,
                       determinism=determinism)
        stores: ProjectBindings | None = None
        try:
            stores = ProjectBindings(project, Path(state_dir), emu.clock, module,
                                     load_doubles(project, doubles), emu.files)
            emu.own(stores)  # closed once the instances that may use it have stopped
            by_name = {w.name: w.step_limit for w in project.workflows}
            env, bindings = make_env(project, stores.values)
            stores.attach_env(env)
            workflows = {
                wf.name: emu.workflow(getattr(module, wf.class_name), name=wf.name, env=env,
                                      ctx=ExecutionContext(), step_limit=by_name[wf.name])
                for wf in project.workflows
            }
            for wf in project.workflows:
                bindings[wf.binding].attach(workflows[wf.name])
            yield Runtime(project, emu, module, env, workflows, stores)
        except BaseException:
            if stores is not None:
                stores.close()
            raise
        finally:
            emu.close_idle()


@contextlib.asynccontextmanager
async def open_runtime(project: Project, state_dir: str | Path, *, clock: str = "real",
                       drain_timeout: float = 0.0, lock: StateLock | None = None,
                       doubles: DoublesSource = None,
                       determinism: str = "warn") -> AsyncIterator[Runtime]:
    """Load ``project``, resume its unfinished instances, and close cleanly on exit.

    On exit, step callbacks still running get up to ``drain_timeout`` seconds to finish.
    """
    with open_runtime_sync(project, state_dir, clock=clock, lock=lock, doubles=doubles,
                           determinism=determinism) as rt:
        try:
            await rt.emulator.__aenter__()
            if rt.bindings is not None:
                rt.bindings.resume()
            yield rt
        finally:
            await rt.emulator.close(drain_timeout=drain_timeout)
