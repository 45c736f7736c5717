"""A board task's runs: run now (and the scheduler's runs of ready tasks), retry, cancel.
A run's job and its task are written in one append."""

from __future__ import annotations

import msgspec

from cairn.commands.jobs.job import load_job
from cairn.commands.planning.templates import load_template
from cairn.commands.runner import (
    CommandResult,
    Plan,
    command_id_for,
    id_for_key,
    run_command,
    writes,
)
from cairn.commands.tasks.projects import load_project
from cairn.commands.tasks.task import load_task, load_tasks
from cairn.domain.errors import (
    CairnError,
    DomainError,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from cairn.domain.jobs.followups import decide_follow_up
from cairn.domain.jobs.job import JobSource
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.planning.templates import steps_for_run, template_slug, uses_template
from cairn.domain.tasks.project import ProjectSettings, with_project
from cairn.domain.tasks.runs import (
    decide_cancel_task,
    decide_changes_requested,
    decide_retry,
    decide_run_request,
    decide_unrunnable,
    run_request,
    run_submission,
)
from cairn.domain.tasks.states import Flags
from cairn.domain.tasks.task import Task
from cairn.streams.store import EventStore, Meta


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
    # What the task leaves unset comes from its project's settings (then the install's).
    project = await load_project(store, task.project)
    settings = project.settings if project else ProjectSettings()
    planned = task
    if task.pipeline_template is None and settings.pipeline_template:
        planned = msgspec.structs.replace(task, pipeline_template=settings.pipeline_template)
    # The task's template as saved (else its built-in), read only when the run takes its steps.
    stored = await load_template(store, template_slug(planned)) if uses_template(planned) else None
    try:
        steps = steps_for_run(planned, stored) if uses_template(planned) else None
        job_type, payload = run_request(planned, steps=steps)
        payload = with_project(job_type, payload, settings)
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


async def follow_up(
    store: EventStore, job_id: str, message: str, flags: Flags, *, actor: str,
    idempotency_key: str | None = None,
) -> tuple[CommandResult, str]:  # fmt: skip
    """A follow-up of a finished job (domain/jobs/followups.py), appended with the link on the
    job it follows; a board task's run is followed up through its task, which goes back to
    ready with the message as its reason and takes the follow-up as its run. With an
    idempotency key a retry makes it once."""
    job = await load_job(store, job_id)
    new_id = id_for_key(store.keys, "job", job.project,
                        f"follow-up:{job_id}:{idempotency_key}" if idempotency_key else None)

    async def plan() -> Plan:
        current = await load_job(store, job_id)
        decision = decide_follow_up(current, new_id, message)
        versions = {job_id: current.version}
        if current.task_id is not None and current.source == JobSource.BOARD:
            task = await load_task(store, current.task_id)
            decision[task.id] = decide_changes_requested(task, new_id, message, flags)
            versions[task.id] = task.version
        return Plan(writes=writes(decision, versions), subject_version=current.version)

    command_id = command_id_for("follow_up", job_id, idempotency_key)
    result = await run_command(store, job_id, plan, meta=Meta(actor=actor), command_id=command_id)
    return result, new_id


async def request_changes(
    store: EventStore, task_id: str, message: str, flags: Flags, *, actor: str,
    idempotency_key: str | None = None,
) -> tuple[CommandResult, str]:  # fmt: skip
    """A task sent back with a message: a follow-up of its last run."""
    task = await load_task(store, task_id)
    if not task.run_ids:
        raise InvalidTransition(f"task {task_id} has not run yet; run it first (there is "
                                "nothing to ask changes of)", task_id=task_id)  # fmt: skip
    return await follow_up(store, task.run_ids[-1], message, flags, actor=actor,
                           idempotency_key=idempotency_key)  # fmt: skip
