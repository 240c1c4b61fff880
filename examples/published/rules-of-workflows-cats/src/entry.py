"""Python port of the cats example of Cloudflare's "Rules of Workflows" ("Name steps
deterministically"), with the fetch handler of the Workflows getting-started guide.

Step names built from step outputs are deterministic: ``cat_list`` comes from a step, so a
replay walks the same list and finds every ``get cat: <name>`` step cached.
"""

import json
from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class MyWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        kv = self.env.KV

        # Good: give steps a deterministic name; return dynamic values as state (or log them).
        @step.do("fetch user data from KV")
        async def fetch_user_data():
            user_data = await kv.get(event["payload"]["user"])
            print(f"fetched user data for {event['payload']['user']}")
            return user_data

        await fetch_user_data()

        # Good: steps named from a step's output, walked in a stable order (no shuffle, no
        # random access), so it is fine to make one step per list entry.
        @step.do("get cat list from KV")
        async def get_cat_list():
            return await kv.get("cat-list", type="json")

        cat_list = await get_cat_list()

        for cat in cat_list:
            # the step runs when awaited, inside this iteration: `cat` is this cat
            @step.do(f"get cat: {cat}")
            async def get_cat():
                return await kv.get(cat)  # noqa: B023

            await get_cat()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        if url.path.startswith("/favicon"):
            return Response.json({}, status=404)

        # Get the status of an existing instance, if provided
        instance_id = parse_qs(url.query).get("instanceId", [None])[0]
        if instance_id:
            instance = await self.env.MY_WORKFLOW.get(instance_id)
            return Response.json({"status": await instance.status()})

        # Spawn a new instance (the request's JSON body is its params) and return its id and
        # status
        body = await request.text()
        params = json.loads(body) if body else {}
        instance = await self.env.MY_WORKFLOW.create(params=params)
        return Response.json({"id": instance.id, "details": await instance.status()})
