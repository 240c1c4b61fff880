"""The conformance tier's one rule, checked at collection: every test names what it ports.

Each test's docstring starts with the source (``workers-sdk <path>:`` or ``workers-py
<path>:``) followed by the quoted test title.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
_SOURCE = re.compile(r'^(workers-sdk|workers-py) \S+\.(test\.ts|py):\s+"[^"]+"', re.S)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function) or _HERE not in Path(str(item.path)).parents:
            continue
        doc = (item.function.__doc__ or "").strip()
        if not _SOURCE.match(doc):
            raise pytest.UsageError(
                f"{item.nodeid}: a conformance test's docstring must start with its source "
                'file and quoted title, e.g. workers-sdk packages/workflows-shared/tests/'
                'engine.test.ts: "should ..."')
