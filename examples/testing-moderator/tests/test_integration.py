"""workers-sdk's fixtures/vitest-plugin-examples/workflows/test/integration.test.ts, ported by
hand: instances created by the Worker's own fetch, seen with ``introspect_workflow``."""

import json

from workflows_emulator.testing import introspect_workflow

STATUS_COMPLETE = "complete"
STEP_NAME = "AI content scan"
MOCK_RESULT = {"violationScore": 0}


async def test_workflow_should_be_able_to_reach_the_end_and_be_successful(workflows_project):
    async with introspect_workflow(workflows_project.env.MODERATOR) as introspector:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, MOCK_RESULT)

        await introspector.modify_all(configure)

        await workflows_project.fetch("https://mock-workflows_project.local/moderate")

        instances = await introspector.get()
        assert len(instances) == 1

        instance = instances[0]
        assert await instance.wait_for_step_result({"name": STEP_NAME}) == MOCK_RESULT
        await instance.wait_for_status(STATUS_COMPLETE)
        assert await instance.get_output() == {"status": "auto_approved"}


async def test_workflow_batch_should_be_able_to_reach_the_end_and_be_successful(workflows_project):
    introspector = await introspect_workflow(workflows_project.env.MODERATOR)
    try:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, MOCK_RESULT)

        await introspector.modify_all(configure)

        await workflows_project.fetch("https://mock-workflows_project.local/moderate-batch")

        instances = await introspector.get()
        assert len(instances) == 3

        for instance in instances:
            assert await instance.wait_for_step_result({"name": STEP_NAME}) == MOCK_RESULT
            await instance.wait_for_status(STATUS_COMPLETE)
            assert await instance.get_output() == {"status": "auto_approved"}
    finally:
        await introspector.dispose()


async def _moderate(project, introspector):
    async def configure(m):
        await m.disable_sleeps()
        await m.mock_step_result({"name": STEP_NAME}, {"violationScore": 50})

    await introspector.modify_all(configure)
    res = await project.fetch("https://mock-workflows_project.local/moderate")
    data = json.loads(await res.text())
    instances = await introspector.get()
    assert len(instances) == 1
    instance = instances[0]
    assert await instance.wait_for_step_result({"name": STEP_NAME}) == {"violationScore": 50}
    return data, instance


async def test_should_terminate_a_workflow_instance(workflows_project):
    async with introspect_workflow(workflows_project.env.MODERATOR) as introspector:
        data, instance = await _moderate(workflows_project, introspector)
        handle = await workflows_project.env.MODERATOR.get(data["id"])
        await handle.terminate()
        await instance.wait_for_status("terminated")


async def test_should_restart_a_workflow_instance(workflows_project):
    async with introspect_workflow(workflows_project.env.MODERATOR) as introspector:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, {"violationScore": 50})
            await m.mock_event({"type": "moderation-decision",
                                "payload": {"moderatorAction": "approve"}})

        await introspector.modify_all(configure)
        res = await workflows_project.fetch("https://mock-workflows_project.local/moderate")
        data = json.loads(await res.text())
        instances = await introspector.get()
        assert len(instances) == 1
        instance = instances[0]
        assert await instance.wait_for_step_result({"name": STEP_NAME}) == {
            "violationScore": 50}

        handle = await workflows_project.env.MODERATOR.get(data["id"])
        await handle.restart()

        # Mocks survive the restart, so the restarted workflow runs with the same config
        await instance.wait_for_status(STATUS_COMPLETE)


async def test_should_pause_a_workflow_instance(workflows_project):
    async with introspect_workflow(workflows_project.env.MODERATOR) as introspector:
        data, instance = await _moderate(workflows_project, introspector)
        handle = await workflows_project.env.MODERATOR.get(data["id"])
        await handle.pause()
        await instance.wait_for_status("paused")
