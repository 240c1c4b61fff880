// A reporting pipeline over D1 and KV: load the day's sales into D1, total them, cache the
// summary in KV, then publish. If publishing fails, the cached summary is deleted and the
// loaded rows removed, newest step first. The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";

export class PipelineWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { day, sales } = event.payload;

    await step.do("create table", async () => {
      await this.env.DB.prepare(
        "CREATE TABLE IF NOT EXISTS sales (day TEXT NOT NULL, amount INTEGER NOT NULL)",
      ).run();
    });

    const loaded = await step.do(
      "load sales",
      async () => {
        const insert = this.env.DB.prepare("INSERT INTO sales (day, amount) VALUES (?, ?)");
        await this.env.DB.batch(sales.map((amount) => insert.bind(day, amount)));
        return { day, rows: sales.length };
      },
      {
        rollback: async ({ output }) => {
          await this.env.DB.prepare("DELETE FROM sales WHERE day = ?").bind(output.day).run();
        },
      },
    );

    const summary = await step.do("total", async () => {
      const row = await this.env.DB.prepare(
        "SELECT COUNT(*) AS n, SUM(amount) AS total FROM sales WHERE day = ?",
      ).bind(loaded.day).first();
      return { day, n: row.n, total: row.total };
    });

    await step.do(
      "cache summary",
      async () => {
        await this.env.CACHE.put(`summary:${day}`, JSON.stringify(summary));
        return { key: `summary:${day}` };
      },
      {
        rollback: async ({ output }) => {
          await this.env.CACHE.delete(output.key);
        },
      },
    );

    return await step.do("publish", async () => {
      const cached = JSON.parse(await this.env.CACHE.get(`summary:${day}`));
      return { published: cached };
    });
  }
}
