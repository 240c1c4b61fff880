"""``workers.workflows``: the non-retryable error, the same class the engine recognises."""

from __future__ import annotations

from workflows_saga import NonRetryableError

__all__ = ["NonRetryableError"]
