"""Import a file, ported from ../js/src/index.js: a flaky download retried with backoff
and a per-attempt timeout, an optional enrichment that may run past its timeout (caught), and a
validation that fails for good with NonRetryableError (the staging is rolled back)."""

import asyncio

from workers.workflows import NonRetryableError

from workflows_saga import WorkflowEntrypoint


class ImportWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        file, rows = event["payload"]["file"], event["payload"]["rows"]
        slow_enrichment = event["payload"].get("slowEnrichment", False)

        download = await step.do(
            "download", lambda: {"file": file, "rows": rows},
            config={"retries": {"limit": 3, "delay": "2 seconds", "backoff": "exponential"},
                    "timeout": "30 seconds"})

        async def drop(rb):
            print(f"drop {rb.output['table']}")

        staged = await step.do(
            "stage rows",
            lambda: {"table": f"staging_{download['file']}", "count": len(download["rows"])},
            rollback=drop)

        async def enrich():
            if slow_enrichment:
                await asyncio.sleep(1.5)  # past the 1-second timeout: the attempt times out
            return {"geocoded": staged["count"]}

        enriched = None
        try:
            enriched = await step.do(
                "enrich", enrich,
                config={"retries": {"limit": 1, "delay": "1 second"}, "timeout": "1 second"})
        except Exception as error:  # JS: catch (error); the step's last error
            print(f"enrichment skipped: {error}")

        async def validate():
            bad = [r for r in download["rows"]
                   if not isinstance(r, (int, float)) or isinstance(r, bool)]
            if bad:
                raise NonRetryableError(f"{len(bad)} malformed row(s)")
            return {"valid": len(download["rows"])}

        await step.do("validate", validate, config={"retries": {"limit": 5, "delay": "1 second"}})
        return {"imported": staged["count"], "enriched": enriched}
