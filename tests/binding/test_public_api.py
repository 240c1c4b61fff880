"""The exported names of `workflows_saga`, `workflows_saga.backend`, `workflows_saga.testing`
and `workflows_emulator` are pinned: changing one is a deliberate act that edits this file."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

USER_NAMES = [
    "DEFAULT_CONFIG",
    "Duration",
    "InvalidStepConfigError",
    "NonRetryableError",
    "RetryPolicy",
    "RollbackConfig",
    "RollbackContext",
    "StepConfig",
    "StepContext",
    "StepError",
    "StepFunction",
    "WorkflowEntrypoint",
    "WorkflowStep",
    "WorkflowTimeoutError",
    "WorkflowsSagaError",
]

BACKEND_NAMES = [
    "CTX_PARAMETER",
    "DEFAULT_RESOLVED",
    "ConfigLike",
    "DelayFunction",
    "ErrorRecord",
    "ResolvedConfig",
    "RollbackContext",
    "RollbackHandler",
    "RollbackOptions",
    "StepBackend",
    "StepCall",
    "StepCallback",
    "StepContext",
    "duration_ms",
    "error_from_record",
    "is_non_retryable",
    "parse_duration_ms",
    "record_error",
    "resolve_config",
    "start_now",
    "wrap_run",
]

TESTING_NAMES = ["MemoryBackend"]

EMULATOR_NAMES = [
    "Clock",
    "DamagedStateError",
    "DurableObjectNamespace",
    "DurableObjectStorage",
    "Emulator",
    "EmulatorError",
    "Instance",
    "InstanceNotFoundError",
    "InvalidActionError",
    "ProjectConfigError",
    "RealClock",
    "StateDirectoryBusy",
    "StepRow",
    "StorageError",
    "VirtualClock",
    "Workflow",
    "WorkflowError",
    "WorkflowTimeoutError",
]

PINNED = {
    "workflows_saga": USER_NAMES,
    "workflows_saga.backend": BACKEND_NAMES,
    "workflows_saga.testing": TESTING_NAMES,
    "workflows_emulator": EMULATOR_NAMES,
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_all_is_exactly_the_pinned_list(module: str) -> None:
    assert importlib.import_module(module).__all__ == PINNED[module]


@pytest.mark.parametrize("module", sorted(PINNED))
def test_every_exported_name_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name


def test_backend_authors_names_are_not_in_the_users_package() -> None:
    import workflows_saga

    for name in ("StepBackend", "StepCall", "RollbackOptions", "ErrorRecord", "MemoryBackend"):
        assert name not in workflows_saga.__all__
        assert not hasattr(workflows_saga, name), name


def test_shared_names_are_the_same_objects() -> None:
    import workflows_emulator
    import workflows_saga
    import workflows_saga.backend as backend

    assert backend.RollbackContext is workflows_saga.RollbackContext
    assert backend.StepContext is workflows_saga.StepContext
    assert workflows_emulator.WorkflowTimeoutError is workflows_saga.WorkflowTimeoutError


def test_the_emulator_uses_only_the_binding_s_public_modules() -> None:
    root = Path(__file__).resolve().parents[2] / "emulator" / "workflows_emulator"
    private = re.compile(r"^\s*(from|import) workflows_saga\._", re.M)
    offenders = [str(p.relative_to(root)) for p in sorted(root.rglob("*.py"))
                 if private.search(p.read_text())]
    assert offenders == []
