"""A content-moderation workflow: an AI score decides, or a human reviews within a day.

Ported from workers-sdk's ``fixtures/vitest-plugin-examples/workflows/src/index.ts``; its
vitest tests are ported next to it, in ``tests/``.
"""

import random
from urllib.parse import parse_qs, urlsplit

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class ModeratorWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("sleep for a while", "10 seconds")

        # An initial analysis from an AI model (simulated score)
        @step.do("AI content scan")
        async def ai_content_scan():
            return {"violationScore": random.randint(0, 99)}

        ai_result = await ai_content_scan()
        if ai_result["violationScore"] < 10:
            @step.do("auto approve content")
            async def approve():
                return {"status": "auto_approved"}

            await approve()
            return {"status": "auto_approved"}
        if ai_result["violationScore"] > 90:
            @step.do("auto reject content")
            async def reject():
                return {"status": "auto_rejected"}

            await reject()
            return {"status": "auto_rejected"}

        # An ambiguous score needs a human review
        event_payload = await step.wait_for_event(
            "human review", "moderation-decision", timeout="1 day")
        if event_payload:
            decision = event_payload["payload"]["moderatorAction"]

            @step.do("apply moderator decision")
            async def apply_decision():
                return {"status": "moderated", "decision": decision}

            await apply_decision()
            return {"status": "moderated", "decision": decision}
        return None


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlsplit(request.url)
        maybe_id = parse_qs(url.query).get("id")
        if maybe_id:
            instance = await self.env.MODERATOR.get(maybe_id[0])
            return Response.json(await instance.status())
        if url.path == "/moderate":
            workflow = await self.env.MODERATOR.create()
            return Response.json({"id": workflow.id, "details": await workflow.status()})
        if url.path == "/moderate-batch":
            workflows = await self.env.MODERATOR.create_batch([{}, {"id": "321"}, {}])
            return Response.json({"ids": [w.id for w in workflows]})
        return Response("Not found", status=404)
