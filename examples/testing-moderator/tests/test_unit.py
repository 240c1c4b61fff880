"""workers-sdk's fixtures/vitest-plugin-examples/workflows/test/unit.test.ts, ported by hand:
the same steps, mocks and assertions, with ``introspect_workflow_instance``."""

import uuid

import pytest

from workflows_emulator.testing import introspect_workflow_instance

STATUS_COMPLETE = "complete"
STATUS_ERROR = "errored"
STEP_NAME = "AI content scan"


# This example disposes the instance implicitly (`async with`, as JS's `await using`)
async def test_should_mock_a_non_violation_score_and_complete(workflows_project):
    env = workflows_project.env
    instance_id = str(uuid.uuid4())
    mock_result = {"violationScore": 0}

    async with introspect_workflow_instance(env.MODERATOR, instance_id) as instance:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, mock_result)

        await instance.modify(configure)

        await env.MODERATOR.create(id=instance_id)

        assert await instance.wait_for_step_result({"name": STEP_NAME}) == mock_result
        assert await instance.wait_for_step_result({"name": "auto approve content"}) == {
            "status": "auto_approved"}
        await instance.wait_for_status(STATUS_COMPLETE)
        assert await instance.get_output() == {"status": "auto_approved"}


# This example disposes the instance explicitly
async def test_should_mock_the_violation_score_calculation_to_fail_2_times_and_then_complete(
        workflows_project):
    env = workflows_project.env
    instance_id = str(uuid.uuid4())
    mock_result = {"violationScore": 0}

    instance = await introspect_workflow_instance(env.MODERATOR, instance_id)
    try:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_error({"name": STEP_NAME}, Exception("Something went wrong!"), 2)
            await m.mock_step_result({"name": STEP_NAME}, mock_result)

        await instance.modify(configure)

        await env.MODERATOR.create(id=instance_id)

        assert await instance.wait_for_step_result({"name": STEP_NAME}) == mock_result
        assert await instance.wait_for_step_result({"name": "auto approve content"}) == {
            "status": "auto_approved"}
        await instance.wait_for_status(STATUS_COMPLETE)
        assert await instance.get_output() == {"status": "auto_approved"}
    finally:
        await instance.dispose()


async def test_should_mock_a_violation_score_and_complete(workflows_project):
    env = workflows_project.env
    instance_id = str(uuid.uuid4())
    mock_result = {"violationScore": 99}

    async with introspect_workflow_instance(env.MODERATOR, instance_id) as instance:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, mock_result)

        await instance.modify(configure)
        await env.MODERATOR.create(id=instance_id)

        assert await instance.wait_for_step_result({"name": STEP_NAME}) == mock_result
        assert await instance.wait_for_step_result({"name": "auto reject content"}) == {
            "status": "auto_rejected"}
        await instance.wait_for_status(STATUS_COMPLETE)
        assert await instance.get_output() == {"status": "auto_rejected"}


async def test_should_be_reviewed_accepted_and_complete(workflows_project):
    env = workflows_project.env
    instance_id = str(uuid.uuid4())
    mock_result = {"violationScore": 50}

    async with introspect_workflow_instance(env.MODERATOR, instance_id) as instance:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, mock_result)
            await m.mock_event({"type": "moderation-decision",
                                "payload": {"moderatorAction": "approve"}})

        await instance.modify(configure)
        await env.MODERATOR.create(id=instance_id)

        assert await instance.wait_for_step_result({"name": STEP_NAME}) == mock_result
        assert await instance.wait_for_step_result({"name": "apply moderator decision"}) == {
            "status": "moderated", "decision": "approve"}
        await instance.wait_for_status(STATUS_COMPLETE)
        assert await instance.get_output() == {"decision": "approve", "status": "moderated"}


async def test_should_disable_retry_delays_when_mocking_step_errors(workflows_project):
    env = workflows_project.env
    instance_id = str(uuid.uuid4())
    mock_result = {"violationScore": 0}

    async with introspect_workflow_instance(env.MODERATOR, instance_id) as instance:
        async def configure(m):
            await m.disable_sleeps()
            await m.disable_retry_delays()
            await m.mock_step_error({"name": STEP_NAME}, Exception("Transient failure"), 2)
            await m.mock_step_result({"name": STEP_NAME}, mock_result)

        await instance.modify(configure)
        await env.MODERATOR.create(id=instance_id)

        assert await instance.wait_for_step_result({"name": STEP_NAME}) == mock_result
        await instance.wait_for_status(STATUS_COMPLETE)
        assert await instance.get_output() == {"status": "auto_approved"}


async def test_should_force_human_review_to_timeout_and_error(workflows_project):
    env = workflows_project.env
    instance_id = str(uuid.uuid4())
    mock_result = {"violationScore": 50}

    async with introspect_workflow_instance(env.MODERATOR, instance_id) as instance:
        async def configure(m):
            await m.disable_sleeps()
            await m.mock_step_result({"name": STEP_NAME}, mock_result)
            await m.force_event_timeout({"name": "human review"})

        await instance.modify(configure)
        await env.MODERATOR.create(id=instance_id)

        assert await instance.wait_for_step_result({"name": STEP_NAME}) == mock_result
        await instance.wait_for_status(STATUS_ERROR)
        error = await instance.get_error()
        # JS reports the timeout as a plain Error; Python workflows see WorkflowTimeoutError
        assert error["name"] in ("Error", "WorkflowTimeoutError")
        assert "Execution timed out" in error["message"]


async def test_waiting_for_a_status_the_instance_can_no_longer_reach_fails(workflows_project):
    env = workflows_project.env
    async with introspect_workflow_instance(env.MODERATOR, "done") as instance:
        await instance.modify(lambda m: m.mock_step_result({"name": STEP_NAME},
                                                           {"violationScore": 0}))
        await env.MODERATOR.create(id="done")
        with pytest.raises(Exception, match=r"has reached status 'complete'\. This is a finite "
                           "status that prevents it from ever reaching the expected status of "
                           "'errored'"):
            await instance.wait_for_status(STATUS_ERROR)
