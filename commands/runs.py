"""Running jobs: claims, a worker's fenced writes (stages, outcome), lease expiry, and board
tasks' runs. A job of a board task and the task are written in one append."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cairn.commands.jobs import load_job
from cairn.commands.runner import (
    RETRY_RECORD_TTL_S,
    CommandResult,
    Plan,
    id_for_key,
    run_command,
    writes,
)
from cairn.commands.tasks import load_task, load_tasks
from cairn.domain.errors import DomainError, InvalidTransition, NotFound
from cairn.domain.job import (
    Job,
    JobSource,
    RetryPolicy,
    SubmitOptions,
    apply_events,
    decide_cancel,
    decide_claim,
    decide_lease_expired,
    decide_submit,
)
from cairn.domain.job_events import (
    JobCancelled,
    JobEvent,
)
from cairn.domain.job_types import ContractSettings, normalize_job
from cairn.domain.runs import decide_run_request, on_claim, on_job_change, run_request
from cairn.domain.task import Task, decide_transition
from cairn.domain.task_events import TaskEvent, TaskRunFinished, TaskTransitioned
from cairn.domain.task_states import Flags, Status
from cairn.streams.envelope import now_rfc3339
from cairn.streams.store import EventStore, Guard, Meta

JobDecider = Callable[[Job], list[JobEvent]]


async def with_its_task(
    store: EventStore, job: Job, events: list[JobEvent], after: Job, flags: Flags
) -> dict[str, tuple[int, list[Any]]]:
    """A job's events and, when they change its status, its task's (if it has one): one
    decision, so the task follows its run in the same append."""
    decision: dict[str, tuple[int, list[Any]]] = {job.id: (job.version, events)}
    if job.task_id and after.status != job.status:
        task = (await load_tasks(store, [job.task_id])).get(job.task_id)
        if task is not None:
            decision[task.id] = (task.version, on_job_change(task, after, flags))
    return decision


async def write_job(
    store: EventStore, job_id: str, decide: JobDecider, flags: Flags, *, actor: str
) -> Job:
    """Decide a job's events, and its task's (if it has one), and append them together."""
    outcome: dict[str, Job] = {}

    async def plan() -> Plan:
        job = await load_job(store, job_id)
        events = decide(job)
        outcome["job"] = after = apply_events(job, events, now_rfc3339())
        decision = await with_its_task(store, job, events, after, flags)
        return Plan(writes=writes(decision), subject_version=job.version)

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
) -> Job:
    """Claim a queued job: running, a new lease epoch, its task in progress, in one append
    (the task's blockers must be unchanged since they were read). A board job whose task can
    no longer start is cancelled instead, saying why; the returned job is then not running.
    `known` is the job as read just before (with others, in one read): decided on first, and
    read again only if it changed since. With a command id (one per dispatch message), a
    claim retried after a lost reply lands once and returns the job as it is now."""
    outcome: dict[str, Job] = {}
    first = [known] if known is not None else []

    async def plan() -> Plan:
        job = first.pop() if first else await load_job(store, job_id)
        events: list[JobEvent] = decide_claim(job, worker_id, job.epoch + 1, lease_ms)
        after = apply_events(job, events, now_rfc3339())
        decision: dict[str, tuple[int, list[Any]]] = {}
        guards: list[Guard] = []
        if job.task_id:
            task = await load_task(store, job.task_id)
            blockers = await load_tasks(store, task.blocked_by)
            try:
                effects = on_claim(task, after, flags, blockers)
                guards = [Guard(i, blocker.version) for i, blocker in blockers.items()]
            except DomainError as refused:
                events = [JobCancelled(reason=f"its task could not start: {refused.message}")]
                after = apply_events(job, events, now_rfc3339())
                effects = on_job_change(task, after, flags)
            decision[task.id] = (task.version, list(effects))
        outcome["job"] = after
        decision = {job_id: (job.version, list(events)), **decision}
        return Plan(writes=writes(decision), subject_version=job.version, guards=guards)

    result = await run_command(
        store, job_id, plan, meta=Meta(actor=worker_id), command_id=command_id,
        command_ttl_s=RETRY_RECORD_TTL_S,
    )  # fmt: skip
    if result.duplicate or "job" not in outcome:
        return await load_job(store, job_id)
    return outcome["job"]


async def expire_lease(
    store: EventStore, job_id: str, epoch: int, flags: Flags, policy: RetryPolicy
) -> Job:
    """The reaper takes a job back from a silent worker, if it still holds it at `epoch`."""

    def decide(job: Job) -> list[JobEvent]:
        if job.epoch != epoch:
            return []
        return decide_lease_expired(job, datetime.now(UTC), policy)

    return await write_job(store, job_id, decide, flags, actor="reaper")


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
    an active run returns that run. A spec that does not normalize blocks the task (scheduler)
    or is refused (run now)."""
    task = await load_task(store, task_id)
    if task.active_job_id is not None:
        return CommandResult(task_id, task.version, "", duplicate=True), task.active_job_id
    job_id = id_for_key(store.keys, "job", task.project, f"run:{task_id}:{len(task.run_ids)}")
    job_type, payload = run_request(task)
    try:
        normalized = normalize_job(job_type, payload, contract)
        submitted = decide_submit(
            normalized,
            SubmitOptions(
                project=task.project,
                source=JobSource.BOARD,
                priority=task.priority,
                task_id=task_id,
            ),
        )
    except DomainError as error:
        if force:
            raise
        await _block(
            store, task, {"code": "invalid_spec", "message": error.message, **error.details}, actor
        )
        raise

    first: list[Task] = [task]
    run: dict[str, str] = {}

    async def plan() -> Plan:
        # The task as read above first; read again only after a conflict.
        current = first.pop() if first else await load_task(store, task_id)
        linked = decide_run_request(current, job_id, flags, force=force)
        run["id"] = job_id if linked else current.active_job_id or job_id
        if not linked:
            return Plan(subject_version=current.version)
        return Plan(
            writes=writes({task_id: (current.version, list(linked)), job_id: (0, list(submitted))}),
            subject_version=current.version,
        )

    result = await run_command(store, task_id, plan, meta=Meta(actor=actor))
    return result, run["id"]


async def _block(store: EventStore, task: Task, reason: dict[str, Any], actor: str) -> None:
    if task.status != Status.READY:
        return
    event = TaskTransitioned(
        from_status=task.status,
        to_status="blocked",
        reason=reason["message"],
        blocked_reason=reason,
    )

    async def plan() -> Plan:
        return Plan(writes=writes({task.id: (task.version, [event])}), subject_version=task.version)

    await run_command(store, task.id, plan, meta=Meta(actor=actor))


async def retry_task(store: EventStore, task_id: str, flags: Flags, *, actor: str) -> CommandResult:
    """A blocked task (say, its run dead-lettered) goes back to ready; the scheduler runs it."""

    async def plan() -> Plan:
        task = await load_task(store, task_id)
        if task.status != Status.BLOCKED:
            raise InvalidTransition(
                f"task {task_id} is {task.status}; only a blocked task is retried",
                from_status=task.status,
                allowed_from=["blocked"],
            )
        blockers = await load_tasks(store, task.blocked_by)
        events: list[TaskEvent] = decide_transition(
            task, "ready", {task_id: task, **blockers}, flags, reason="retry"
        )[task_id]
        return Plan(
            writes=writes({task_id: (task.version, list(events))}), subject_version=task.version
        )

    return await run_command(store, task_id, plan, meta=Meta(actor=actor))


async def cancel_task(
    store: EventStore, task_id: str, flags: Flags, *, actor: str
) -> CommandResult:
    """Cancel a task and its active run together."""

    async def plan() -> Plan:
        task = await load_task(store, task_id)
        tasks = {task_id: task, **await load_tasks(store, task.blocks)}
        decision: dict[str, tuple[int, list[Any]]] = {
            agg: (tasks[agg].version, list(events))
            for agg, events in decide_transition(
                task, "cancelled", tasks, flags, reason="cancelled"
            ).items()
        }
        if task.active_job_id:
            try:
                job = await load_job(store, task.active_job_id)
            except NotFound:
                job = None
            if job is not None and job.status in {"queued", "running"}:
                decision[job.id] = (job.version, list(decide_cancel(job, "task cancelled")))
                if job.status == "queued":  # cancelled at once: the run is over now
                    finished = TaskRunFinished(job_id=job.id, outcome="cancelled")
                    decision[task_id][1].append(finished)
        return Plan(writes=writes(decision), subject_version=task.version)

    return await run_command(store, task_id, plan, meta=Meta(actor=actor))
