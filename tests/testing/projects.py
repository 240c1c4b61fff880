"""Real Worker projects on disk, and pytest runs of sample test files in fresh projects (a
subprocess each, as a user runs them), for the testing toolkit's tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

SHOP_TOML = """
name = "shop"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[vars]
GREETING = "hello"

[ai]
binding = "AI"

[[kv_namespaces]]
binding = "ORDERS"
id = "orders"

[[workflows]]
name = "describe-order"
binding = "DESCRIBE"
class_name = "DescribeOrder"
"""

SHOP_ENTRY = '''
import json
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class DescribeOrder(WorkflowEntrypoint):
    """Asks the AI binding for a description, waits a day, then files it in KV."""

    async def run(self, event, step):
        order = event["payload"]["order"]

        @step.do("describe")
        async def describe():
            answer = await self.env.AI.run("@cf/meta/llama", {"prompt": order})
            return answer["response"]

        text = await describe()
        await step.sleep("let it rest", "1 day")

        @step.do("file")
        async def file():
            await self.env.ORDERS.put(order, text)
            return {"order": order, "text": text}

        return await file()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if request.method == "POST" and path == "/orders":
            body = await request.json()
            inst = await self.env.DESCRIBE.create(params={"order": body["order"]})
            return Response.json({"id": inst.id, "ct": request.headers.get("content-type")})
        if path.startswith("/orders/"):
            text = await self.env.ORDERS.get(path.rsplit("/", 1)[1])
            return Response(text or "", status=200 if text else 404)
        if path == "/boom":
            raise RuntimeError("the handler broke")
        return Response(json.dumps({"greeting": self.env.GREETING, "url": request.url}),
                        headers={"content-type": "application/json"})
'''

SHOP_DOUBLES = '''
class FakeAi:
    def __init__(self):
        self.prompts = []

    async def run(self, model, inputs):
        self.prompts.append(inputs["prompt"])
        return {"response": f"a fine {inputs['prompt']}"}


def make_doubles(project):
    return {"AI": FakeAi()}
'''


def write_shop(root: Path, *, doubles: bool = True) -> Path:
    """A Worker project with a workflow, KV, an AI binding and a fetch handler; its config."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "entry.py").write_text(SHOP_ENTRY)
    (root / "wrangler.toml").write_text(SHOP_TOML)
    if doubles:
        (root / "emulator_doubles.py").write_text(SHOP_DOUBLES)
    return root / "wrangler.toml"


@dataclass
class PytestRun:
    """A finished pytest subprocess."""

    returncode: int
    output: str


def run_pytest(project: Path, *args: str) -> PytestRun:
    """Run pytest in ``project`` as a user would (its own rootdir, our plugin installed)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=project, timeout=180,
    )
    return PytestRun(result.returncode, result.stdout + result.stderr)


def write_file(path: Path, text: str) -> Path:
    """Write ``text`` (dedented) to ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path
