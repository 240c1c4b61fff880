// A reminder schedule: a reminder a day for `days` days (step.sleep between them, the
// same step names counted 1, 2, 3 ...), then a sleepUntil the campaign's end, then the
// campaign is closed. If closing fails, the reminders are retracted, newest first.
// The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";

export class ReminderWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { user, days, endsAt } = event.payload;

    const sent = [];
    for (let day = 1; day <= days; day++) {
      sent.push(
        await step.do("send reminder", async () => ({ user, day }), {
          rollback: async ({ output, stepName }) => {
            console.log(`retract ${stepName}: day ${output.day}`);
          },
        }),
      );
      await step.sleep("wait a day", "1 day");
    }

    await step.sleepUntil("until the campaign ends", new Date(endsAt));

    return await step.do("close campaign", async () => ({ user, reminders: sent.length }));
  }
}
