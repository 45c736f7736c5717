"""Running jobs: claims, a job's writes with its task following, and lease expiry. A job of a
board task and the task are written in one append. A task's own run commands (run now,
retry, cancel) are in commands/jobs/task_runs.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cairn.commands.jobs.job import load_job, with_its_task
from cairn.commands.runner import (
    RETRY_RECORD_TTL_S,
    Plan,
    run_command,
    writes,
)
from cairn.commands.tasks.task import load_task, load_tasks
from cairn.domain.decision import events_for
from cairn.domain.jobs.attempts import RetryPolicy, decide_lease_expired
from cairn.domain.jobs.events import JobEvent
from cairn.domain.jobs.job import Job, JobStatus, apply_events
from cairn.domain.jobs.live import end_all
from cairn.domain.tasks.runs import (
    decide_claim_run,
)
from cairn.domain.tasks.states import Flags
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
        # Its live sessions went with the worker that served them.
        return [*end_all(job, "worker_lost"), *decide_lease_expired(job, datetime.now(UTC), policy)]

    return await write_job(store, job_id, expired, flags, actor="reaper")
