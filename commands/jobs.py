"""Queue commands: submit, update, cancel, resubmit; quick runs and their promotion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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
from cairn.domain.errors import NotFound
from cairn.domain.job import (
    Job,
    JobSource,
    SubmitOptions,
    decide_cancel,
    decide_promote,
    decide_resubmit,
    decide_submit,
    decide_update,
    evolve,
    resubmission,
)
from cairn.domain.job_events import JobEvent, job_event_from
from cairn.domain.job_types import ContractSettings, normalize_job
from cairn.domain.task import decide_create
from cairn.domain.task_events import TaskEvent
from cairn.domain.task_spec import TaskSpec
from cairn.streams.envelope import Envelope
from cairn.streams.store import EventStore, Meta

Event = JobEvent | TaskEvent


def fold_job(events: list[Envelope]) -> Job | None:
    state: Job | None = None
    for e in events:
        state = evolve(state, job_event_from(e.type, e.data), e.agg, e.ver, e.ts)
    return state


async def load_jobs(store: EventStore, ids: Iterable[str]) -> dict[str, Job]:
    """The current state of each existing job among `ids` (unknown ids are left out)."""
    return await load_states(store, ids, "job", fold_job)


async def load_job(store: EventStore, job_id: str) -> Job:
    job = (await load_jobs(store, [job_id])).get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", job_id=job_id)
    return job


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
    job_id = id_for_key(store.keys, "job", request.project, idempotency_key)

    async def decide() -> Plan:
        return Plan(writes=writes({job_id: (0, list(events))}))

    return await _run(
        store, job_id, decide, actor, command_id_for("submit", request.project, idempotency_key)
    )


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
    events = decide_update(job, fields)

    async def decide() -> Plan:
        return Plan(
            writes=writes({job_id: (job.version, list(events))}), subject_version=job.version
        )

    return await _run(store, job_id, decide, actor, None, retry=False)


async def cancel_job(
    store: EventStore, job_id: str, *, actor: str, reason: str = ""
) -> CommandResult:
    """Cancel a queued job now, or ask a running one to stop; a repeat changes nothing."""

    async def decide() -> Plan:
        job = await load_job(store, job_id)
        return Plan(
            writes=writes({job_id: (job.version, list(decide_cancel(job, reason)))}),
            subject_version=job.version,
        )

    return await _run(store, job_id, decide, actor, None)


async def resubmit_job(store: EventStore, job_id: str, *, actor: str) -> tuple[CommandResult, str]:
    """A new job from a failed or cancelled one, linked both ways; a repeat returns the same."""
    new_id = id_for_key(
        store.keys, "job", (await load_job(store, job_id)).project, f"resubmit:{job_id}"
    )

    async def decide() -> Plan:
        job = await load_job(store, job_id)
        events = decide_resubmit(job, new_id)
        if not events:
            return Plan(subject_version=job.version)
        return Plan(
            writes=writes(
                {job_id: (job.version, list(events)), new_id: (0, [resubmission(job, new_id)])}
            ),
            subject_version=job.version,
        )

    result = await _run(store, job_id, decide, actor, None)
    return result, new_id


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

    async def decide() -> Plan:
        current = await load_job(store, job_id)
        events = decide_promote(current, task_id)
        if not events:
            return Plan(subject_version=current.version)
        spec = TaskSpec.model_validate(
            {
                "project": current.project,
                "title": _title(current.prompt or current.id),
                "task_type": "feature",
                "priority": current.priority if -1 <= current.priority <= 3 else 1,
                "description": current.prompt or "",
                "source": "promoted_quick_action",
                "spec": {"type": current.job_type, "payload": current.payload},
            }
        )
        created = decide_create(task_id, spec, {}, force=False)[task_id]
        return Plan(
            writes=writes({job_id: (current.version, list(events)), task_id: (0, list(created))}),
            subject_version=current.version,
        )

    result = await _run(store, job_id, decide, actor, None)
    promoted = (await load_job(store, job_id)).promoted_task_id or task_id
    return result, promoted


def _title(prompt: str) -> str:
    line = prompt.strip().splitlines()[0] if prompt.strip() else "Quick run"
    return line if len(line) <= 300 else line[:297] + "..."


async def _run(
    store: EventStore,
    job_id: str,
    decide: Any,
    actor: str,
    command_id: str | None,
    *,
    retry: bool = True,
) -> CommandResult:
    return await run_command(
        store,
        job_id,
        decide,
        meta=Meta(actor=actor),
        command_id=command_id,
        retry_on_conflict=retry,
    )
