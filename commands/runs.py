"""Running jobs: claims, a worker's fenced writes (stages, outcome), lease expiry, and board
tasks' runs. A job of a board task and the task are written in one append."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cairn.commands.jobs import load_job, with_its_task
from cairn.commands.runner import (
    RETRY_RECORD_TTL_S,
    CommandResult,
    Plan,
    id_for_key,
    run_command,
    writes,
)
from cairn.commands.tasks import load_task, load_tasks
from cairn.commands.templates import load_template
from cairn.domain.decision import events_for
from cairn.domain.errors import CairnError, DomainError, NotFound, ValidationFailed
from cairn.domain.job import Job, JobStatus, RetryPolicy, apply_events, decide_lease_expired
from cairn.domain.job_events import JobEvent
from cairn.domain.job_types import ContractSettings, normalize_job
from cairn.domain.runs import (
    decide_cancel_task,
    decide_claim_run,
    decide_retry,
    decide_run_request,
    decide_unrunnable,
    run_request,
    run_submission,
)
from cairn.domain.task import Task
from cairn.domain.task_states import Flags
from cairn.domain.templates import steps_for_run, template_slug, uses_template
from cairn.streams.envelope import now_rfc3339
from cairn.streams.store import EventStore, Guard, Meta

# What a writer appends to a job, given the job as it is now (it wraps the domain's deciders).
JobEvents = Callable[[Job], list[JobEvent]]


async def write_job(
    store: EventStore, job_id: str, events_for_job: JobEvents, flags: Flags, *, actor: str
) -> Job:
    """Append what `events_for_job` makes of the job, and its task's answer (if it has one),
    together."""
    outcome: dict[str, Job] = {}

    async def plan() -> Plan:
        job = await load_job(store, job_id)
        events = events_for_job(job)
        outcome["job"] = after = apply_events(job, events, now_rfc3339())
        return Plan(
            writes=await with_its_task(store, job, events, after, flags),
            subject_version=job.version,
        )

    await run_command(store, job_id, plan, meta=Meta(actor=actor))
    return outcome["job"]


async def claim_job(
    store: EventStore,
    job_id: str,
    worker_id: str,
    flags: Flags,
    known: Job | None = None,
    *,
    lease_ms: int | None = None,
    command_id: str | None = None,
    retrying: bool = False,
) -> Job:
    """Claim a queued job: running, a new lease epoch, its task in progress, in one append
    (the task's blockers must be unchanged since they were read). A board job whose task can
    no longer start is cancelled instead, saying why; the returned job is then not running.
    `known` is the job as read just before (with others, in one read): decided on first, and
    read again only if it changed since. With a command id (one per dispatch message), a
    claim retried after a lost reply (`retrying`) lands once and returns the job as it is
    now; a first try skips that read, the append itself would answer a duplicate."""
    outcome: dict[str, Job] = {}
    first = [known] if known is not None else []

    async def plan() -> Plan:
        job = first.pop() if first else await load_job(store, job_id)
        task = await load_task(store, job.task_id) if job.task_id else None
        blockers = await load_tasks(store, task.blocked_by) if task else {}
        decision = decide_claim_run(
            job, task, blockers, flags, worker_id=worker_id, epoch=job.epoch + 1,
            lease_ms=lease_ms,
        )  # fmt: skip
        outcome["job"] = after = apply_events(
            job, events_for(decision, job.id, JobEvent), now_rfc3339()
        )
        # The claim moved the task under the dependency guard, so the blockers read must hold.
        guards = [Guard(i, b.version) for i, b in blockers.items()]
        versions = {job.id: job.version, **({task.id: task.version} if task else {})}
        return Plan(
            writes=writes(decision, versions),
            subject_version=job.version,
            guards=guards if after.status == JobStatus.RUNNING else [],
        )

    result = await run_command(
        store, job_id, plan, meta=Meta(actor=worker_id), command_id=command_id,
        command_ttl_s=RETRY_RECORD_TTL_S, precheck=retrying,
    )  # fmt: skip
    if result.duplicate or "job" not in outcome:
        return await load_job(store, job_id)
    return outcome["job"]


async def expire_lease(
    store: EventStore, job_id: str, epoch: int, flags: Flags, policy: RetryPolicy
) -> Job:
    """The reaper takes a job back from a silent worker, if it still holds it at `epoch`."""

    def expired(job: Job) -> list[JobEvent]:
        if job.epoch != epoch:
            return []
        return decide_lease_expired(job, datetime.now(UTC), policy)

    return await write_job(store, job_id, expired, flags, actor="reaper")


# ---- board tasks and their runs ------------------------------------------------------------


async def request_task_run(
    store: EventStore,
    task_id: str,
    contract: ContractSettings,
    flags: Flags,
    *,
    actor: str,
    force: bool = False,
) -> tuple[CommandResult, str]:
    """Queue a run (job, source board) of a task and link it, in one append; a task that has
    an active run returns that run. A spec that does not make a valid job blocks the task
    (scheduler) or is refused (run now)."""
    task = await load_task(store, task_id)
    if task.active_job_id is not None:
        return CommandResult(task_id, task.version, "", duplicate=True), task.active_job_id
    job_id = id_for_key(store.keys, "job", task.project, f"run:{task_id}:{len(task.run_ids)}")
    # The task's template as saved (else its built-in), read only when the run takes its steps.
    stored = await load_template(store, template_slug(task)) if uses_template(task) else None
    try:
        steps = steps_for_run(task, stored) if uses_template(task) else None
        job_type, payload = run_request(task, steps=steps)
        submission = run_submission(task, normalize_job(job_type, payload, contract))
    except (DomainError, ValidationFailed) as error:
        if not force:
            await _block(store, task, error, actor)
        raise

    first: list[Task] = [task]
    run: dict[str, str] = {}

    async def plan() -> Plan:
        # The task as read above first; read again only after a conflict.
        current = first.pop() if first else await load_task(store, task_id)
        decision = decide_run_request(current, job_id, submission, flags, force=force)
        run["id"] = job_id if decision else current.active_job_id or job_id
        return Plan(
            writes=writes(decision, {task_id: current.version}), subject_version=current.version
        )

    result = await run_command(store, task_id, plan, meta=Meta(actor=actor))
    return result, run["id"]


async def _block(store: EventStore, task: Task, error: CairnError, actor: str) -> None:
    first: list[Task] = [task]

    async def plan() -> Plan:
        current = first.pop() if first else await load_task(store, task.id)
        return Plan(
            writes=writes(decide_unrunnable(current, error), {task.id: current.version}),
            subject_version=current.version,
        )

    await run_command(store, task.id, plan, meta=Meta(actor=actor))


async def retry_task(store: EventStore, task_id: str, flags: Flags, *, actor: str) -> CommandResult:
    """A blocked task (say, its run dead-lettered) goes back to ready; the scheduler runs it."""

    async def plan() -> Plan:
        task = await load_task(store, task_id)
        blockers = await load_tasks(store, task.blocked_by)
        decision = decide_retry(task, blockers, flags)
        return Plan(writes=writes(decision, {task_id: task.version}), subject_version=task.version)

    return await run_command(store, task_id, plan, meta=Meta(actor=actor))


async def cancel_task(
    store: EventStore, task_id: str, flags: Flags, *, actor: str
) -> CommandResult:
    """Cancel a task and its active run together."""

    async def plan() -> Plan:
        task = await load_task(store, task_id)
        tasks = {task_id: task, **await load_tasks(store, task.blocks)}
        run = None
        if task.active_job_id:
            try:
                run = await load_job(store, task.active_job_id)
            except NotFound:
                run = None
        decision = decide_cancel_task(task, run, tasks, flags)
        versions = {i: t.version for i, t in tasks.items()}
        if run is not None:
            versions[run.id] = run.version
        return Plan(writes=writes(decision, versions), subject_version=task.version)

    return await run_command(store, task_id, plan, meta=Meta(actor=actor))
