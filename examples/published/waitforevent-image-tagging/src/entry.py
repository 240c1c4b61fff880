"""Python port of Cloudflare's waitForEvent example (``workflows/waitForEvent/workflow``).

An uploaded image goes to R2 and starts a workflow; it records the image in D1 and waits for a
human's approval event. Approved, it has Workers AI describe the image and stores the tags.

HTTP API (as the original's, used by its Next.js frontend):
    POST /                          multipart/form-data with an "image" file -> {"id", ...}
    GET  /?instanceId=<id>          the instance's status
    POST /approval-for-ai-tagging   {"instanceId", "approved": true|false}
    GET  /tags?instanceId=<id>      {"instanceId", "tags"}
"""

import secrets
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs, urlparse

from config import AI_CONFIG, ROUTES
from services.database import DatabaseService
from utils.response import ResponseHandler
from workers import WorkerEntrypoint, WorkflowEntrypoint

_NANOID_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"


def nanoid(size=21):
    """A random URL-safe id, as the ``nanoid`` package makes them."""
    return "".join(secrets.choice(_NANOID_ALPHABET) for _ in range(size))


class MyWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        db = DatabaseService(self.env.DB)
        image_key = event["payload"]["imageKey"]
        instance_id = event["instanceId"]

        @step.do("Insert image name into database")
        async def insert_image():
            await db.insert_image(image_key, instance_id)

        await insert_image()

        wait_for_approval = await step.wait_for_event(
            "Wait for AI Image tagging approval", "approval-for-ai-tagging",
            timeout="5 minute")

        approval_payload = wait_for_approval["payload"]
        if approval_payload and approval_payload.get("approved"):
            @step.do("Generate AI tags")
            async def generate_ai_tags():
                image = await self.env.workflow_demo_bucket.get(image_key)
                if image is None:
                    raise Exception("Image not found")

                array_buffer = await image.arrayBuffer()
                inputs = {
                    "image": list(array_buffer),
                    "prompt": AI_CONFIG["PROMPT"],
                    "max_tokens": AI_CONFIG["MAX_TOKENS"],
                }
                response = await self.env.AI.run(AI_CONFIG["MODEL"], inputs)
                return response.description

            ai_tags = await generate_ai_tags()

            @step.do("Update DB with AI tags")
            async def update_tags():
                await db.update_image_tags(instance_id, ai_tags)

            await update_tags()


def form_files(content_type, body):
    """The parts of a multipart/form-data body: ``{name: (filename, bytes)}``."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is not None:
            parts[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return parts


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        query = parse_qs(url.query)
        env = self.env
        db = DatabaseService(env.DB)

        # Handle OPTIONS request for CORS preflight
        if request.method == "OPTIONS":
            return ResponseHandler.cors_preflight()

        # Handle /tags endpoint
        if url.path == ROUTES["TAGS"]:
            instance_id = query.get("instanceId", [None])[0]
            if not instance_id:
                return ResponseHandler.bad_request("Missing instanceId parameter")
            try:
                tags = await db.get_image_tags(instance_id)
                return ResponseHandler.success({"instanceId": instance_id, "tags": tags})
            except Exception as error:
                print("Error fetching tags:", error)
                return ResponseHandler.error("Error fetching tags")

        # Handle /approval-for-ai-tagging endpoint
        if url.path == ROUTES["APPROVAL"]:
            if request.method != "POST":
                return ResponseHandler.method_not_allowed()
            try:
                body = await request.json()
                instance_id = body.get("instanceId")
                approved = body.get("approved")
                if not instance_id or not isinstance(approved, bool):
                    return ResponseHandler.bad_request("Missing or invalid parameters")

                instance = await env.MY_WORKFLOW.get(instance_id)
                await instance.send_event(type="approval-for-ai-tagging",
                                          payload={"approved": approved})
                return ResponseHandler.success({"success": True})
            except Exception as error:
                print("Error processing approval:", error)
                return ResponseHandler.error("Error processing approval")

        # Handle Creating new image Workflow
        if request.method == "POST" and url.path == "/":
            try:
                content_type = request.headers.get("content-type")
                if not content_type or "multipart/form-data" not in content_type:
                    return ResponseHandler.bad_request(
                        "Invalid content type. Expected multipart/form-data")

                files = form_files(content_type, await request.bytes())
                image = files.get("image")
                if image is None or image[0] is None:
                    return ResponseHandler.bad_request("Missing or invalid image file")

                image_key = nanoid()
                await env.workflow_demo_bucket.put(image_key, image[1])

                instance = await env.MY_WORKFLOW.create(params={"imageKey": image_key})
                return ResponseHandler.success({
                    "id": instance.id,
                    "details": await instance.status(),
                    "success": True,
                    "message": "Image upload started successfully",
                })
            except Exception as error:
                print("Error processing image upload:", error)
                return ResponseHandler.error("Error processing image upload")

        # Get the status of an existing instance
        if request.method == "GET" and url.path == "/":
            instance_id = query.get("instanceId", [None])[0]
            if not instance_id:
                return ResponseHandler.bad_request("Missing instanceId parameter")
            try:
                instance = await env.MY_WORKFLOW.get(instance_id)
                return ResponseHandler.success(await instance.status())
            except Exception as error:
                print("Error getting workflow status:", error)
                return ResponseHandler.error("Error getting workflow status")

        # Handle favicon requests
        if url.path.startswith("/favicon"):
            return ResponseHandler.not_found()

        return ResponseHandler.bad_request("Invalid Request")

