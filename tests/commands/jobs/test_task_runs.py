"""A board task and its runs on the real store: each command appends the task's events and
its job's together, as the domain decided them."""

from __future__ import annotations

import pytest

from cairn.commands.jobs.claims import claim_job
from cairn.commands.jobs.job import cancel_job, load_job, update_job
from cairn.commands.jobs.task_runs import cancel_task, request_task_run, retry_task
from cairn.commands.tasks.task import create_task, load_task, transition_task, update_task
from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.tasks.spec import TaskPatch, TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.streams.store import EventStore

CONTRACT = ContractSettings(default_repository="acme/app")
FLAGS = Flags()


async def ready_task(store: EventStore, **fields: object) -> str:
    spec = TaskSpec.model_validate(
        {"title": "Fix login", "task_type": "bug_fix", "priority": 1, "status": "ready", **fields}
    )
    return (await create_task(store, spec, actor="test")).id


async def test_a_run_is_requested_and_claimed_with_its_task(store: EventStore) -> None:
    task_id = await ready_task(store)
    result, job_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    assert result.written == 2 and (await load_task(store, task_id)).active_job_id == job_id
    again, same = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    assert again.duplicate and same == job_id
    job = await claim_job(store, job_id, "w1", FLAGS, lease_ms=5_000)
    assert job.status == "running" and job.epoch == 1
    task = await load_task(store, task_id)
    assert task.status == "in_progress" and task.current_agent_id == "w1"


async def test_a_claim_whose_task_cannot_start_cancels_the_run(store: EventStore) -> None:
    task_id = await ready_task(store)
    _, job_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    await transition_task(store, task_id, "backlog", FLAGS, actor="person")
    job = await claim_job(store, job_id, "w1", FLAGS)
    assert job.status == "cancelled" and "its task could not start" in (job.cancel_reason or "")
    task = await load_task(store, task_id)
    assert task.status == "backlog" and task.active_job_id is None


async def test_a_queued_run_cancelled_in_the_queue_ends_on_its_task(store: EventStore) -> None:
    # The task follows its run here too: before, it kept the cancelled run as its active run
    # and the scheduler never ran it again.
    task_id = await ready_task(store)
    _, job_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    await cancel_job(store, job_id, actor="person", reason="not now")
    assert (await load_job(store, job_id)).status == "cancelled"
    task = await load_task(store, task_id)
    assert task.active_job_id is None and task.status == "blocked"
    assert task.blocked_reason and task.blocked_reason["code"] == "run_cancelled"
    await retry_task(store, task_id, FLAGS, actor="person")
    _, next_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    assert next_id != job_id


async def test_cancelling_a_task_cancels_its_queued_run_in_one_append(store: EventStore) -> None:
    task_id = await ready_task(store)
    _, job_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    result = await cancel_task(store, task_id, FLAGS, actor="person")
    assert result.written == 3  # the task cancelled and its run ended; the job cancelled
    assert (await load_job(store, job_id)).status == "cancelled"
    task = await load_task(store, task_id)
    assert task.status == "cancelled" and task.active_job_id is None


async def test_a_spec_that_makes_no_job_blocks_the_task_unless_run_now(store: EventStore) -> None:
    bad = {"spec": {"type": "no_such_type", "payload": {}}}
    forced = await ready_task(store, **bad)
    with pytest.raises(ValidationFailed):
        await request_task_run(store, forced, CONTRACT, FLAGS, actor="person", force=True)
    assert (await load_task(store, forced)).status == "ready"
    task_id = await ready_task(store, **bad)
    with pytest.raises(ValidationFailed):
        await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    task = await load_task(store, task_id)
    assert task.status == "blocked" and task.blocked_reason
    assert task.blocked_reason["code"] == "invalid_spec" and task.blocked_reason["errors"]


async def test_only_a_blocked_task_is_retried(store: EventStore) -> None:
    task_id = await ready_task(store)
    with pytest.raises(InvalidTransition, match="only a blocked task is retried"):
        await retry_task(store, task_id, FLAGS, actor="person")


async def test_updates_carry_typed_changes_and_refuse_a_null_that_would_empty_a_field(
    store: EventStore,
) -> None:
    task_id = await ready_task(store, assignee="ann")
    await update_task(store, task_id, TaskPatch.model_validate({"assignee": None}), actor="p")
    assert (await load_task(store, task_id)).assignee is None
    with pytest.raises(ValidationFailed):
        await update_task(store, task_id, TaskPatch.model_validate({"title": None}), actor="p")
    _, job_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    job = await load_job(store, job_id)
    await update_job(store, job_id, {"priority": 3}, CONTRACT, actor="p",
                     expected_version=job.version)  # fmt: skip
    assert (await load_job(store, job_id)).priority == 3
    with pytest.raises(ValidationFailed):
        await update_job(store, job_id, {"priority": None}, CONTRACT, actor="p",
                         expected_version=job.version + 1)  # fmt: skip
