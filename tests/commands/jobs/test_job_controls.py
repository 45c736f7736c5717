"""A person's controls of a job, and a task following its run's steps, on the real store:
what is taken is appended, what is refused appends nothing."""

from __future__ import annotations

import pytest

from cairn.commands.jobs.claims import claim_job
from cairn.commands.jobs.held import Held
from cairn.commands.jobs.job import (
    JobRequest,
    add_operator_message,
    cancel_job,
    load_job,
    pause_job,
    resume_job,
    submit_job,
)
from cairn.commands.jobs.task_runs import request_task_run
from cairn.commands.tasks.task import create_task, load_task
from cairn.domain.errors import InvalidTransition, NotFound, ValidationFailed
from cairn.domain.jobs.attempts import RetryPolicy
from cairn.domain.jobs.events import JobEvent, JobStepFinished, JobStepStarted
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.streams.store import EventStore

CONTRACT = ContractSettings(default_repository="acme/app")
FLAGS = Flags()


async def queued_job(store: EventStore) -> str:
    return (await submit_job(store, JobRequest("noop", {}), CONTRACT, actor="ann")).id


async def test_pause_and_resume_append_once_each(store: EventStore) -> None:
    job_id = await queued_job(store)
    paused = await pause_job(store, job_id, actor="ann", reason="wait for the review")
    assert paused.written == 1 and paused.version == 2
    job = await load_job(store, job_id)
    assert job.paused and job.pause_reason == "wait for the review"
    again = await pause_job(store, job_id, actor="ann")
    assert again.written == 0 and again.position == ""
    resumed = await resume_job(store, job_id, actor="ann")
    assert resumed.written == 1 and not (await load_job(store, job_id)).paused
    assert (await resume_job(store, job_id, actor="ann")).written == 0
    events = await store.read_aggregate(job_id)
    assert [e.type for e in events] == ["job.submitted", "job.paused", "job.resumed"]
    assert events[1].actor == "ann"


async def test_refused_controls_append_nothing(store: EventStore) -> None:
    job_id = await queued_job(store)
    await cancel_job(store, job_id, actor="ann")
    version = await store.version(job_id)
    with pytest.raises(InvalidTransition):
        await pause_job(store, job_id, actor="ann")
    with pytest.raises(InvalidTransition):
        await resume_job(store, job_id, actor="ann")
    with pytest.raises(InvalidTransition):
        await add_operator_message(store, job_id, "too late", actor="ann")
    assert await store.version(job_id) == version
    with pytest.raises(NotFound):
        await pause_job(store, store.keys.new_id("job", "default"), actor="ann")


async def test_operator_messages_are_kept_in_order_and_a_keyed_retry_lands_once(
    store: EventStore,
) -> None:
    job_id = await queued_job(store)
    first = await add_operator_message(store, job_id, " use the staging db ", actor="ann")
    second = await add_operator_message(store, job_id, "and be quick", actor="bob",
                                        idempotency_key="k1")  # fmt: skip
    retried = await add_operator_message(store, job_id, "and be quick", actor="bob",
                                         idempotency_key="k1")  # fmt: skip
    assert retried.duplicate and retried.version == second.version
    job = await load_job(store, job_id)
    assert [(m["id"], m["text"]) for m in job.operator_messages] == [
        (first.version, "use the staging db"), (second.version, "and be quick")]  # fmt: skip
    with pytest.raises(ValidationFailed) as refused:
        await add_operator_message(store, job_id, "   ", actor="ann")
    assert refused.value.errors[0]["path"] == "text"
    assert await store.version(job_id) == second.version


async def test_a_task_follows_its_runs_steps_in_the_same_append(store: EventStore) -> None:
    spec = TaskSpec.model_validate(
        {"title": "Fix login", "task_type": "bug_fix", "priority": 1, "status": "ready"}
    )
    task_id = (await create_task(store, spec, actor="ann")).id
    _, job_id = await request_task_run(store, task_id, CONTRACT, FLAGS, actor="scheduler")
    held = Held(store, await claim_job(store, job_id, "w1", FLAGS), "w1", FLAGS, RetryPolicy())

    def started(index: int, title: str | None) -> list[JobEvent]:
        return [JobStepStarted(epoch=held.epoch, index=index, step_id=f"s{index}", title=title)]

    await held.write(lambda job: started(1, "Plan"))
    task = await load_task(store, task_id)
    assert task.current_step == "Plan" and task.current_agent_id == "w1"
    job_log, task_log = await store.read_aggregate(job_id), await store.read_aggregate(task_id)
    assert task_log[-1].type == "task.step_started"
    # One append: the worker's command id for this write marks both events.
    assert task_log[-1].corr == job_log[-1].corr and job_log[-1].corr.startswith("run:")
    await held.write(lambda job: [
        JobStepFinished(epoch=held.epoch, index=1, step_id="s1", outcome="succeeded"),
        *started(2, None),
    ])  # fmt: skip
    task = await load_task(store, task_id)
    assert task.current_step == "s2"
    assert [e.type for e in (await store.read_aggregate(task_id))[-2:]] == [
        "task.step_completed", "task.step_started"]  # fmt: skip
    failed = await held.fail("execute", {"code": "exit_status"}, retryable=False)
    assert failed.status == "failed"
    task = await load_task(store, task_id)
    assert task.status == "blocked" and task.current_step == "s2"  # where the run stopped
