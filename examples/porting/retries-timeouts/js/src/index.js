// Import a file: a flaky download retried with exponential backoff and a per-attempt
// timeout, an optional enrichment that may run past its 1-second timeout (caught: the
// instance goes on) and a
// validation that fails for good with NonRetryableError, which rolls back the staging.
// The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

export class ImportWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { file, rows, slowEnrichment = false } = event.payload;

    const download = await step.do(
      "download",
      { retries: { limit: 3, delay: "2 seconds", backoff: "exponential" }, timeout: "30 seconds" },
      async () => ({ file, rows }),
    );

    const staged = await step.do(
      "stage rows",
      async () => ({ table: `staging_${download.file}`, count: download.rows.length }),
      {
        rollback: async ({ output }) => {
          console.log(`drop ${output.table}`);
        },
      },
    );

    let enriched = null;
    try {
      enriched = await step.do(
        "enrich",
        { retries: { limit: 1, delay: "1 second" }, timeout: "1 second" },
        async () => {
          if (slowEnrichment) await new Promise((resolve) => setTimeout(resolve, 1500));
          return { geocoded: staged.count };
        },
      );
    } catch (error) {
      console.log(`enrichment skipped: ${error.message}`);
    }

    await step.do("validate", { retries: { limit: 5, delay: "1 second" } }, async () => {
      const bad = download.rows.filter((r) => typeof r !== "number");
      if (bad.length > 0) throw new NonRetryableError(`${bad.length} malformed row(s)`);
      return { valid: download.rows.length };
    });

    return { imported: staged.count, enriched };
  }
}
