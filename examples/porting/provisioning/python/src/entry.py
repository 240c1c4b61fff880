"""Provision a server, ported from ../js/src/index.js: network, VM, disk, each with an undo
and a rollback_config; a failed health check undoes them newest first, and the VM's undo
fails once and is retried."""

from workflows_saga import WorkflowEntrypoint

UNDO = {"retries": {"limit": 2, "delay": "5 seconds", "backoff": "constant"},
        "timeout": "1 minute"}
teardown_calls: dict[str, int] = {}  # per instance: how often the VM's undo ran


class ProvisionWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        name, size = event["payload"]["name"], event["payload"]["size"]
        instance_id = event["instanceId"]

        @step.do("create network", rollback_config=UNDO)
        async def network():
            return {"network": f"net-{name}"}

        @network.rollback
        async def delete_network(rb):
            print(f"delete {rb.output['network']}")

        net = await network()

        @step.do("create vm", config={"retries": {"limit": 2, "delay": "10 seconds"},
                                      "timeout": "2 minutes"}, rollback_config=UNDO)
        async def create_vm():
            return {"vm": f"vm-{name}", "network": net["network"], "size": size}

        @create_vm.rollback
        async def destroy_vm(rb):
            calls = teardown_calls.get(instance_id, 0) + 1
            teardown_calls[instance_id] = calls
            if calls == 1:
                raise Exception(f"{rb.output['vm']} is still stopping")
            print(f"destroy {rb.output['vm']}")

        vm = await create_vm()

        @step.do("attach disk", rollback_config=UNDO)
        async def attach_disk():
            return {"disk": f"disk-{name}", "vm": vm["vm"]}

        @attach_disk.rollback
        async def detach(rb):
            print(f"detach {rb.output['disk']}")

        await attach_disk()

        @step.do("health check", config={"retries": {"limit": 2, "delay": "3 seconds",
                                                     "backoff": "linear"}})
        async def health_check():
            return {"healthy": vm["vm"]}

        return await health_check()
