"""A reporting pipeline over D1 and KV, ported from ../js/src/index.js: load the day's
sales into D1, total them, cache the summary in KV, publish; a failure to publish deletes
the cached summary and removes the loaded rows."""

import json

from workflows_saga import WorkflowEntrypoint


class PipelineWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        day, sales = event["payload"]["day"], event["payload"]["sales"]
        db, cache = self.env.DB, self.env.CACHE

        async def create_table():
            await db.prepare(
                "CREATE TABLE IF NOT EXISTS sales (day TEXT NOT NULL, amount INTEGER NOT NULL)"
            ).run()

        await step.do("create table", create_table)

        async def load():
            insert = db.prepare("INSERT INTO sales (day, amount) VALUES (?, ?)")
            await db.batch([insert.bind(day, amount) for amount in sales])
            return {"day": day, "rows": len(sales)}

        async def unload(rb):
            await db.prepare("DELETE FROM sales WHERE day = ?").bind(rb.output["day"]).run()

        loaded = await step.do("load sales", load, rollback=unload)

        async def total():
            row = await db.prepare(
                "SELECT COUNT(*) AS n, SUM(amount) AS total FROM sales WHERE day = ?"
            ).bind(loaded["day"]).first()
            return {"day": day, "n": row["n"], "total": row["total"]}

        summary = await step.do("total", total)

        async def cache_summary():
            await cache.put(f"summary:{day}", json.dumps(summary))
            return {"key": f"summary:{day}"}

        async def uncache(rb):
            await cache.delete(rb.output["key"])

        await step.do("cache summary", cache_summary, rollback=uncache)

        async def publish():
            return {"published": json.loads(await cache.get(f"summary:{day}"))}

        return await step.do("publish", publish)
