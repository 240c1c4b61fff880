"""Opens every binding a project declares on its state directory, for its ``env``.

Emulated tables (KV, D1, R2, Durable Objects, same-project services) get their store; a
double from `doubles` replaces any binding; a binding of another type with no double is an
error at load that names it. `ProjectBindings.close` closes every store it opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..clock import Clock
from ..durable_object import OpenFiles
from ..errors import ProjectConfigError
from ..workers_shim.outbound import route_fetch
from . import layout
from .doubles import FETCH, as_binding, missing_double_error

if TYPE_CHECKING:
    from ..project import Project

DEFAULT_ENTRYPOINT = "Default"


class ProjectBindings:
    """The opened bindings of one project: ``values`` go into ``env``."""

    def __init__(self, project: Project, state_dir: Path, clock: Clock, module: ModuleType,
                 doubles: dict[str, Any], files: OpenFiles | None = None) -> None:
        self.values: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self._needs_env: list[Any] = []
        self._namespaces: dict[str, Any] = {}  # one per class: one live object per id
        self._files = files
        self._fetch = contextlib.ExitStack()
        try:
            self._open(project, state_dir, clock, module, doubles)
        except BaseException:
            self.close()
            raise
        self.values.update({k: as_binding(v) for k, v in doubles.items() if k != FETCH})
        self._fetch.enter_context(route_fetch(doubles.get(FETCH)))

    def _open(self, project: Project, state: Path, clock: Clock, module: ModuleType,
              doubles: dict[str, Any]) -> None:
        configs = project.bindings
        for table, name in configs.unsupported:
            if name not in doubles:
                raise missing_double_error(project, table, name)
        for kv in configs.kv_namespaces:
            if kv.binding not in doubles:
                from .kv import KvNamespace

                self._store(kv.binding, KvNamespace(layout.kv_path(state, kv), clock))
        for d1 in configs.d1_databases:
            if d1.binding not in doubles:
                from .d1 import D1Database

                self._store(d1.binding, D1Database(layout.d1_path(state, d1)))
        for r2 in configs.r2_buckets:
            if r2.binding not in doubles:
                from .r2 import R2Bucket

                self._store(r2.binding, R2Bucket(layout.r2_root(state, r2), clock))
        for do in configs.durable_objects:
            if do.binding not in doubles:
                from .durable_objects import DurableObjectNamespace

                ns = self._namespaces.get(do.class_name)
                if ns is None:
                    cls = _project_class(project, module, do.class_name,
                                         f'[[durable_objects.bindings]] "{do.binding}"')
                    ns = DurableObjectNamespace(cls, class_name=do.class_name,
                                                directory=layout.do_dir(state, do.class_name),
                                                clock=clock, files=self._files)
                    self._namespaces[do.class_name] = ns
                    self._closers.append(ns.close)
                    self._needs_env.append(ns)
                self.values[do.binding] = ns
        for svc in configs.services:
            if svc.binding not in doubles:
                from .services import ServiceBinding

                if svc.service != project.name:
                    raise ProjectConfigError(
                        f'{project.config_path}: [[services]] "{svc.binding}" binds the Worker '
                        f'"{svc.service}", but only this project ("{project.name}") runs here; '
                        "bind an entrypoint of this Worker or supply a double (README, Bindings)")
                entry = svc.entrypoint or DEFAULT_ENTRYPOINT
                target = _project_class(project, module, entry,
                                        f'[[services]] "{svc.binding}" entrypoint')
                binding = ServiceBinding(target, name=svc.binding)
                self.values[svc.binding] = binding
                self._needs_env.append(binding)

    def _store(self, name: str, store: Any) -> None:
        self.values[name] = store
        self._closers.append(store.close)

    def attach_env(self, env: Any) -> None:
        """Give the bindings that construct user classes (objects, entrypoints) the env."""
        for binding in self._needs_env:
            binding.attach_env(env)

    def resume(self) -> None:
        """Re-arm the Durable Object alarms persisted before this process started (call with
        the event loop running)."""
        for ns in self._namespaces.values():
            ns.resume_alarms()

    async def settle(self) -> None:
        """Wait for running alarm handlers and ``wait_until`` work of Durable Objects."""
        for ns in self._namespaces.values():
            await ns.settle()

    def close(self) -> None:
        """Close every store opened (stops alarms); the fetch route is removed."""
        self._fetch.close()
        while self._closers:
            self._closers.pop()()


def _project_class(project: Project, module: ModuleType, name: str, what: str) -> type:
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ProjectConfigError(
            f"{project.config_path}: {what} names the class {name!r}, but "
            f"{project.main.name} defines no such class; export it from main or fix the name")
    return cls
