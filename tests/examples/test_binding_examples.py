"""The binding examples run under ``workflows-emulator dev`` as their users would run them.

Each test copies an example project into ``tmp_path``, prepares its data with the CLI (D1
migrations, KV seeds), starts ``python -m workflows_emulator dev`` on a free loopback port,
drives the Worker over HTTP as the original's clients do, and checks what ended up in D1, KV
and R2 through the CLI. The examples: ``examples/bindings-project`` (a saga over D1, KV, R2
and a Durable Object) and the three ports in ``examples/published/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dev_servers import API, DevServer, free_port, http

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PUBLISHED = EXAMPLES / "published"


def copy_project(source: Path, tmp_path: Path) -> Path:
    """A copy of the example in ``tmp_path`` (the repository stays clean)."""
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".wf-state"))
    return target


def cli(project: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m workflows_emulator ARGS -c PROJECT --persist-to STATE``, from the project."""
    return subprocess.run(
        [sys.executable, "-m", "workflows_emulator", *args, "-c", str(project),
         "--persist-to", str(state)],
        capture_output=True, text=True, cwd=project, timeout=60)


def cli_ok(project: Path, state: Path, *args: str) -> str:
    result = cli(project, state, *args)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


def d1_rows(project: Path, state: Path, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` through ``d1 execute DB --command ... --json``."""
    out = json.loads(cli_ok(project, state, "d1", "execute", "DB", "--command", sql, "--json"))
    rows: list[dict[str, Any]] = out[0]["results"]
    return rows


class Server(DevServer):
    """``workflows-emulator dev`` on a free port of 127.0.0.1, run in the project's folder."""

    def __init__(self, project: Path, state: Path) -> None:
        super().__init__(project, state, cwd=project)
        self.start()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return http("GET", self.base + path, headers=headers)

    def post(self, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return http("POST", self.base + path, body, headers)

    def instance(self, workflow: str, instance_id: str) -> dict[str, Any]:
        """The emulator API's view of an instance: status, steps, rollback."""
        code, body = self.get(f"{API}/workflows/{workflow}/instances/{instance_id}")
        assert code == 200, body
        result: dict[str, Any] = body["result"]
        return result

    def wait(self, workflow: str, instance_id: str, statuses: set[str],
             timeout: float = 20) -> dict[str, Any]:
        """The instance once its status is one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.instance(workflow, instance_id)
            if found["status"] in statuses:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance_id} stayed {found['status']}:\n{self.output}")
            time.sleep(0.05)


@pytest.fixture
def serve() -> Iterator[Callable[[Path, Path], Server]]:
    """Start dev servers; each is terminated and waited for when the test ends."""
    started: list[Server] = []

    def start(project: Path, state: Path) -> Server:
        server = Server(project, state)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def steps_of(instance: dict[str, Any]) -> dict[str, Any]:
    """``{"step name-count": output}`` of an instance's forward steps."""
    return {f"{s['name']}-{s['count']}": s["output"] for s in instance["steps"]}


# -- examples/bindings-project --------------------------------------------------------------


def test_bindings_project_checkout_commits_and_every_store_rolls_back(
        tmp_path: Path, serve: Callable[[Path, Path], Server]) -> None:
    project, state = copy_project(EXAMPLES / "bindings-project", tmp_path), tmp_path / "state"
    assert "0001_create_orders.sql" in cli_ok(project, state, "d1", "migrations", "apply", "DB")
    server = serve(project, state)
    assert server.post("/inventory/mug", {"qty": 10}) == (
        200, {"on_hand": 10, "reserved": 0, "reservations": {}})

    code, placed = server.post("/orders", {"order_id": "o-1", "sku": "mug", "qty": 3,
                                           "unit_price": 1200})
    assert code == 200
    done = server.wait("checkout", placed["id"], {"complete", "errored"})
    assert done["status"] == "complete"
    assert done["output"] == {"order_id": "o-1", "status": "paid", "invoice": "o-1.json",
                              "charge_id": f"ch_{placed['id']}"}

    # declined card: the invoice, the stock, the order row and the key are all undone
    code, declined = server.post("/orders", {"order_id": "o-2", "sku": "mug", "qty": 5,
                                             "unit_price": 20000})
    failed = server.wait("checkout", declined["id"], {"complete", "errored"})
    assert failed["status"] == "errored"
    assert failed["error"] == {"name": "NonRetryableError",
                               "message": "card declined: 100000 is over the limit of 50000"}
    assert failed["rollback"] == {"outcome": "complete", "error": None}
    assert [s["step"] for s in failed["rollback_phase"]["steps"]] == [
        "store invoice-1", "reserve stock-1", "record order-1", "claim order key-1"]

    # out of stock: the reservation step fails, the two steps before it are undone
    code, too_many = server.post("/orders", {"order_id": "o-3", "sku": "mug", "qty": 50,
                                             "unit_price": 1})
    short = server.wait("checkout", too_many["id"], {"complete", "errored"})
    assert short["error"]["message"] == "only 7 x mug in stock, order o-3 needs 50"
    assert [s["step"] for s in short["rollback_phase"]["steps"]] == [
        "reserve stock-1", "record order-1", "claim order key-1"]

    # the same order id is refused while taken, and can be placed again once rolled back
    code, again = server.post("/orders", {"order_id": "o-1", "sku": "mug", "qty": 1,
                                          "unit_price": 1})
    assert (code, again) == (409, {"error": "order already placed", "id": placed["id"],
                                   "state": "confirmed"})
    code, retried = server.post("/orders", {"order_id": "o-2", "sku": "mug", "qty": 2,
                                            "unit_price": 20000})
    assert server.wait("checkout", retried["id"], {"complete", "errored"})["status"] == (
        "complete")

    # the Worker's own view, then each store through the CLI while the server runs
    code, shown = server.get("/orders/o-1")
    assert code == 200
    assert shown["order"]["status"] == "paid" and shown["order"]["total"] == 3600
    assert shown["invoice"] == {"key": "o-1.json", "size": 78}
    assert shown["instance"]["status"] == "complete"
    assert server.get("/inventory/mug") == (
        200, {"on_hand": 5, "reserved": 5, "reservations": {"o-1": 3, "o-2": 2}})
    assert d1_rows(project, state, "SELECT id, status, total, instance_id FROM orders "
                   "ORDER BY id") == [
        {"id": "o-1", "status": "paid", "total": 3600, "instance_id": placed["id"]},
        {"id": "o-2", "status": "paid", "total": 40000, "instance_id": retried["id"]},
        {"id": "o-3", "status": "cancelled", "total": 50, "instance_id": too_many["id"]},
    ]
    keys = json.loads(cli_ok(project, state, "kv", "key", "list", "--binding", "ORDER_KEYS"))
    assert [k["name"] for k in keys] == ["order:o-1", "order:o-2"]
    assert json.loads(cli_ok(project, state, "kv", "key", "get", "order:o-1", "--binding",
                             "ORDER_KEYS")) == {
        "instance": placed["id"], "state": "confirmed", "invoice": "o-1.json"}
    invoice = json.loads(cli_ok(project, state, "r2", "object", "get", "shop-invoices/o-1.json",
                                "--pipe"))
    assert invoice == {"order_id": "o-1", "sku": "mug", "qty": 3, "unit_price": 1200,
                       "total": 3600}
    assert cli(project, state, "r2", "object", "get", "shop-invoices/o-3.json",
               "--pipe").returncode != 0
    assert server.stop() == 0
    assert "rollback: 5 x mug back in stock" in server.output  # the handler's print


# -- examples/published/waitforevent-image-tagging --------------------------------------------


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file, as a browser's FormData sends it."""
    boundary = "----wfemulatorboundary7MA4YWxk"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_waitforevent_port_waits_for_approval_then_tags_with_the_ai_double(
        tmp_path: Path, serve: Callable[[Path, Path], Server]) -> None:
    project = copy_project(PUBLISHED / "waitforevent-image-tagging", tmp_path)
    state = tmp_path / "state"
    assert "2 commands executed successfully" in cli_ok(
        project, state, "d1", "execute", "workflows-demo-d1", "--file=./db.sql")
    server = serve(project, state)
    image = bytes(range(256)) * 4

    body, headers = multipart("image", "cat.png", image)
    code, started = server.post("/", body, headers)
    assert code == 200 and started["success"] is True
    assert started["message"] == "Image upload started successfully"
    instance_id = started["id"]
    server.wait("workflows-starter", instance_id, {"waiting"})
    code, status = server.get(f"/?instanceId={instance_id}")
    assert (code, status["success"], status["status"]) == (200, True, "waiting")
    assert server.get(f"/tags?instanceId={instance_id}") == (
        200, {"success": True, "instanceId": instance_id, "tags": None})

    assert server.post("/approval-for-ai-tagging", {"instanceId": instance_id,
                                                    "approved": True}) == (
        200, {"success": True})
    done = server.wait("workflows-starter", instance_id, {"complete", "errored"})
    assert done["status"] == "complete", done["error"]
    tags = steps_of(done)["Generate AI tags-1"]
    assert len(tags.split(", ")) == 5
    assert server.get(f"/tags?instanceId={instance_id}") == (
        200, {"success": True, "instanceId": instance_id, "tags": tags})

    # rejected: the workflow ends without asking the AI
    body, headers = multipart("image", "dog.png", b"\x89PNG not approved")
    rejected = server.post("/", body, headers)[1]["id"]
    server.wait("workflows-starter", rejected, {"waiting"})
    server.post("/approval-for-ai-tagging", {"instanceId": rejected, "approved": False})
    ended = server.wait("workflows-starter", rejected, {"complete", "errored"})
    assert ended["status"] == "complete"
    assert [s["name"] for s in ended["steps"]] == [
        "Insert image name into database", "Wait for AI Image tagging approval"]

    rows = d1_rows(project, state, "SELECT ImageKey, ImageTags, InstanceID FROM Images "
                   "ORDER BY ID")
    assert [(r["ImageTags"], r["InstanceID"]) for r in rows] == [
        (tags, instance_id), (None, rejected)]
    stored = subprocess.run(
        [sys.executable, "-m", "workflows_emulator", "r2", "object", "get",
         f"workflow-demo/{rows[0]['ImageKey']}", "--pipe", "-c", str(project), "--persist-to",
         str(state)], capture_output=True, cwd=project, timeout=60)
    assert stored.returncode == 0 and stored.stdout == image

    assert server.post("/", {"not": "a form"}) == (
        400, {"success": False, "error": "Invalid content type. Expected multipart/form-data"})
    assert server.post("/approval-for-ai-tagging", {"instanceId": instance_id}) == (
        400, {"success": False, "error": "Missing or invalid parameters"})


def test_waitforevent_port_without_the_ai_double_stops_at_load_naming_ai(
        tmp_path: Path) -> None:
    project = copy_project(PUBLISHED / "waitforevent-image-tagging", tmp_path)
    (project / "emulator_doubles.py").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "workflows_emulator", "dev", "-c", str(project), "--port",
         str(free_port()), "--persist-to", str(tmp_path / "state")],
        capture_output=True, text=True, cwd=project, timeout=60)
    assert result.returncode != 0
    assert 'binding "AI" in [ai] is not emulated by workflows-emulator' in result.stderr
    assert "emulator_doubles.py" in result.stderr and "make_doubles" in result.stderr


# -- examples/published/saas-admin-customer-workflow -------------------------------------------


def test_saas_admin_port_runs_the_customer_workflow_from_its_api(
        tmp_path: Path, serve: Callable[[Path, Path], Server]) -> None:
    project = copy_project(PUBLISHED / "saas-admin-customer-workflow", tmp_path)
    state = tmp_path / "state"
    applied = cli_ok(project, state, "d1", "migrations", "apply", "DB")
    assert "0003_create_user_subscriptions.sql" in applied
    server = serve(project, state)
    token = {"Authorization": "Bearer local-dev-token"}

    assert server.get("/api/customers") == (401, {"message": "Invalid API token"})
    assert server.post("/api/customers/1/workflow", headers={"x-api-token": "wrong"})[0] == 401
    assert server.post("/api/subscriptions", {"name": "Pro", "description": "everything",
                                              "price": 20, "features": [{"name": "sso"}]},
                       token) == (201, {"message": "Subscription created successfully",
                                        "success": True})
    assert server.post("/api/customers", {"name": "Ada", "email": "ada@example.com"},
                       token)[0] == 201
    code, customers = server.get("/api/customers", token)
    assert code == 200
    assert [(c["id"], c["name"], c["email"]) for c in customers["customers"]] == [
        (1, "Ada", "ada@example.com")]
    code, subscription = server.get("/api/subscriptions/1", token)
    assert subscription["subscription"]["features"] == [
        {"id": 1, "name": "sso", "description": None}]

    assert server.post("/api/customers/1/workflow", headers=token) == (202, "")
    assert server.post("/api/customers/99/workflow", headers=token) == (202, "")
    workflow = "saas-admin-template-customer-workflow"
    deadline = time.monotonic() + 20
    while True:
        listed = server.get(f"{API}/workflows/{workflow}/instances")[1]["result"]
        if len(listed) == 2 and all(i["status"] == "complete" for i in listed):
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)
    runs = [steps_of(server.instance(workflow, i["id"])) for i in listed]
    found, missing = sorted(runs, key=lambda steps: steps["fetch customer-1"] is None)
    assert list(found) == ["fetch customer-1", "conditional customer step-1", "example step-1"]
    assert found["fetch customer-1"]["email"] == "ada@example.com"
    assert missing == {"fetch customer-1": None, "example step-1": None}
    assert d1_rows(project, state, "SELECT name FROM customers") == [{"name": "Ada"}]
    assert server.stop() == 0
    assert "A customer was found! This step only runs if a customer is found." in server.output


# -- examples/published/rules-of-workflows-cats -------------------------------------------------


def test_cats_port_reads_kv_in_one_deterministically_named_step_per_cat(
        tmp_path: Path, serve: Callable[[Path, Path], Server]) -> None:
    project = copy_project(PUBLISHED / "rules-of-workflows-cats", tmp_path)
    state = tmp_path / "state"
    for key, value in [("cat-list", '["tabby", "calico", "sphynx"]'),
                       ("tabby", "orange stripes"), ("calico", "three colours"),
                       ("sphynx", "no fur"), ("alice", '{"likes": "cats"}')]:
        cli_ok(project, state, "kv", "key", "put", key, value, "--binding", "KV")
    server = serve(project, state)

    code, started = server.post("/", {"user": "alice"})
    assert code == 200 and started["details"]["status"] in {"queued", "running", "complete"}
    done = server.wait("workflows-starter", started["id"], {"complete", "errored"})
    assert done["status"] == "complete", done["error"]
    assert steps_of(done) == {
        "fetch user data from KV-1": '{"likes": "cats"}',
        "get cat list from KV-1": ["tabby", "calico", "sphynx"],
        "get cat: tabby-1": "orange stripes",
        "get cat: calico-1": "three colours",
        "get cat: sphynx-1": "no fur",
    }
    code, status = server.get(f"/?instanceId={started['id']}")
    assert (code, status["status"]["status"]) == (200, "complete")
    assert server.get("/favicon.ico") == (404, {})
