"""Queue commands: submit, update, cancel, resubmit; pause, resume and operator messages;
quick runs and their promotion."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.commands.jobs.pulls import pull_writes
from cairn.commands.orchestrator.runs import run_writes
from cairn.commands.runner import (
    CommandResult,
    Plan,
    at_version,
    command_id_for,
    id_for_key,
    load_states,
    run_command,
    writes,
)
from cairn.commands.tasks.task import load_tasks
from cairn.domain.changes import changes_from
from cairn.domain.errors import NotFound
from cairn.domain.jobs.controls import decide_operator_message, decide_pause, decide_resume
from cairn.domain.jobs.events import JobChanges, JobEvent, job_event_from
from cairn.domain.jobs.job import (
    Job,
    JobSource,
    SubmitOptions,
    apply_events,
    decide_cancel,
    decide_resubmit,
    decide_submit,
    decide_update,
    evolve,
)
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.tasks.runs import decide_promote_quick_run, decide_with_task, task_follows
from cairn.domain.tasks.states import Flags
from cairn.streams.envelope import Envelope, now_rfc3339
from cairn.streams.store import EventStore, Meta, StreamWrite


def fold_job(events: list[Envelope]) -> Job | None:
    """A job's state from its stream (None if it has no events)."""
    state: Job | None = None
    for e in events:
        state = evolve(state, job_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_jobs(store: EventStore, ids: Iterable[str]) -> dict[str, Job]:
    """The current state of each existing job among `ids` (unknown ids are left out)."""
    return await load_states(store, ids, "job", fold_job)


async def load_job(store: EventStore, job_id: str) -> Job:
    job = (await load_jobs(store, [job_id])).get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", job_id=job_id)
    return job


async def with_its_task(
    store: EventStore, job: Job, events: Sequence[JobEvent], after: Job, flags: Flags
) -> list[StreamWrite]:
    """A job's events and its task's answer (if it has one), as the writes of one append: the
    task follows its run's steps and status. The task is read only when it has to answer."""
    task = None
    if job.task_id and task_follows(job, events, after):
        task = (await load_tasks(store, [job.task_id])).get(job.task_id)
    decision = decide_with_task(job, events, after, task, flags)
    planned = writes(decision, {job.id: job.version, **({task.id: task.version} if task else {})})
    return [*planned, *await pull_writes(store, job, events),
            *await run_writes(store, job, events, after)]


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A submission as the API received it: type and payload, plus queue options."""

    type: str
    payload: Any
    priority: int = 0
    max_attempts: int = 3
    affinity_key: str | None = None
    project: str = "default"


async def submit_job(
    store: EventStore,
    request: JobRequest,
    contract: ContractSettings,
    *,
    actor: str,
    source: JobSource = JobSource.QUEUE,
    idempotency_key: str | None = None,
    prompt: str | None = None,
) -> CommandResult:
    """Normalize and queue a job; a refused payload appends nothing."""
    normalized = normalize_job(request.type, request.payload, contract)
    options = SubmitOptions(
        project=request.project,
        source=source,
        priority=request.priority,
        max_attempts=request.max_attempts,
        affinity_key=request.affinity_key,
        prompt=prompt,
    )
    events = decide_submit(normalized, options)
    # Quick runs and queue jobs keep their idempotency keys apart: the same key sent to both
    # makes two jobs, never the other's.
    key = idempotency_key if source != JobSource.QUICK_ACTION or not idempotency_key else (
        f"quick:{idempotency_key}")  # fmt: skip
    job_id = id_for_key(store.keys, "job", request.project, key)

    async def plan() -> Plan:
        return Plan(writes=writes({job_id: [*events]}, {}))

    return await _run(store, job_id, plan, actor, command_id_for("submit", request.project, key))


async def update_job(
    store: EventStore,
    job_id: str,
    changes: dict[str, Any],
    contract: ContractSettings,
    *,
    actor: str,
    expected_version: int,
) -> CommandResult:
    """Change a queued job (payload, priority, attempts, affinity) at `expected_version`."""
    job = at_version(await load_job(store, job_id), expected_version)
    fields = {k: v for k, v in changes.items() if k != "payload"}
    if "payload" in changes:
        normalized = normalize_job(job.submitted_type, changes["payload"], contract)
        fields |= {
            "payload": normalized.original,
            "normalized": normalized.normalized,
            "required_capabilities": normalized.required_capabilities,
        }
    events = decide_update(job, changes_from(JobChanges, fields))

    async def plan() -> Plan:
        return Plan(
            writes=writes({job_id: [*events]}, {job_id: job.version}), subject_version=job.version
        )

    return await _run(store, job_id, plan, actor, None, retry=False)


async def cancel_job(
    store: EventStore, job_id: str, *, actor: str, reason: str = ""
) -> CommandResult:
    """Cancel a queued job now, or ask a running one to stop; a repeat changes nothing. A
    board task whose run this is follows it in the same append (blocked, its run ended)."""

    async def plan() -> Plan:
        job = await load_job(store, job_id)
        events = decide_cancel(job, reason)
        after = apply_events(job, events, now_rfc3339())
        # The flags change only where a succeeded run takes its task; a cancel needs none.
        return Plan(
            writes=await with_its_task(store, job, events, after, Flags()),
            subject_version=job.version,
        )

    return await _run(store, job_id, plan, actor, None)


async def resubmit_job(store: EventStore, job_id: str, *, actor: str) -> tuple[CommandResult, str]:
    """A new job from a failed or cancelled one, linked both ways; a repeat returns the same."""
    new_id = id_for_key(
        store.keys, "job", (await load_job(store, job_id)).project, f"resubmit:{job_id}"
    )

    async def plan() -> Plan:
        job = await load_job(store, job_id)
        decision = decide_resubmit(job, new_id)
        return Plan(writes=writes(decision, {job_id: job.version}), subject_version=job.version)

    result = await _run(store, job_id, plan, actor, None)
    return result, new_id


async def pause_job(
    store: EventStore, job_id: str, *, actor: str, reason: str = ""
) -> CommandResult:
    """Hold a queued or running job at its next step boundary; a repeat changes nothing."""
    return await _control(store, job_id, actor, lambda job: decide_pause(job, reason))


async def resume_job(store: EventStore, job_id: str, *, actor: str) -> CommandResult:
    """Let a paused job go on; resuming a job that is not paused changes nothing."""
    return await _control(store, job_id, actor, decide_resume)


async def add_operator_message(
    store: EventStore, job_id: str, text: str, *, actor: str, idempotency_key: str | None = None
) -> CommandResult:
    """Leave a note for the agent of a queued or running job (the worker hands it over before
    the next step); with an idempotency key a retry adds it once."""
    command_id = command_id_for("operator_message", job_id, idempotency_key)
    return await _control(
        store, job_id, actor, lambda job: decide_operator_message(job, text), command_id
    )


async def _control(
    store: EventStore,
    job_id: str,
    actor: str,
    decide: Callable[[Job], list[JobEvent]],
    command_id: str | None = None,
) -> CommandResult:
    """A person's control of a job; it leaves the job's status (so its task) as it is."""

    async def plan() -> Plan:
        job = await load_job(store, job_id)
        events = decide(job)
        return Plan(writes=writes({job_id: [*events]}, {job_id: job.version}),
                    subject_version=job.version)  # fmt: skip

    return await _run(store, job_id, plan, actor, command_id)


async def submit_quick_run(
    store: EventStore,
    request: JobRequest,
    prompt: str,
    contract: ContractSettings,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> CommandResult:
    """A one-off run that stays off the board (source quick_action, no task)."""
    return await submit_job(
        store,
        request,
        contract,
        actor=actor,
        source=JobSource.QUICK_ACTION,
        idempotency_key=idempotency_key,
        prompt=prompt,
    )


async def promote_quick_run(
    store: EventStore, job_id: str, *, actor: str
) -> tuple[CommandResult, str]:
    """Make a board task from a quick run, in the same append as the link; idempotent."""
    job = await load_job(store, job_id)
    task_id = id_for_key(store.keys, "task", job.project, f"promote:{job_id}")

    async def plan() -> Plan:
        current = await load_job(store, job_id)
        decision = decide_promote_quick_run(current, task_id)
        return Plan(
            writes=writes(decision, {job_id: current.version}), subject_version=current.version
        )

    result = await _run(store, job_id, plan, actor, None)
    promoted = (await load_job(store, job_id)).promoted_task_id or task_id
    return result, promoted


async def _run(
    store: EventStore,
    job_id: str,
    plan: Callable[[], Awaitable[Plan]],
    actor: str,
    command_id: str | None,
    *,
    retry: bool = True,
) -> CommandResult:
    return await run_command(
        store,
        job_id,
        plan,
        meta=Meta(actor=actor),
        command_id=command_id,
        retry_on_conflict=retry,
    )
