"""The template's customer workflow (``src/workflows/customer_workflow.ts``)."""

from workers import WorkflowEntrypoint


class CustomerWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        db = self.env.DB
        id = event["payload"]["id"]

        @step.do("fetch customer")
        async def fetch_customer():
            resp = await db.prepare("SELECT * FROM customers WHERE id = ?").bind(id).run()
            if resp.success:
                return resp.results[0] if resp.results else None
            return None

        customer = await fetch_customer()

        if customer:
            @step.do("conditional customer step")
            async def conditional_customer_step():
                print("A customer was found! This step only runs if a customer is found.")
                print(customer)

            await conditional_customer_step()

        @step.do("example step")
        async def example_step():
            print("This step always runs, and is the last step in the workflow.")

        await example_step()
