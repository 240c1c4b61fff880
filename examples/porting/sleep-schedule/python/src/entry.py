"""A reminder schedule, ported from ../js/src/index.js: a reminder a day, a sleep_until the
campaign's end, then the campaign is closed; a failure retracts the reminders."""

from datetime import datetime

from workflows_saga import WorkflowEntrypoint


class ReminderWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        params = event["payload"]
        user, days = params["user"], params["days"]

        async def retract(rb):
            print(f"retract {rb.step_name}: day {rb.output['day']}")

        sent = []
        for day in range(1, days + 1):
            sent.append(await step.do("send reminder",
                                      lambda day=day: {"user": user, "day": day},
                                      rollback=retract))
            await step.sleep("wait a day", "1 day")

        # JS: new Date(endsAt); a datetime here (an ISO string with Z parses from 3.11)
        await step.sleep_until("until the campaign ends", datetime.fromisoformat(params["endsAt"]))

        return await step.do("close campaign", lambda: {"user": user, "reminders": len(sent)})
