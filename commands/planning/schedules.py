"""Schedule commands: create (its job checked as a fire would make it, before anything is
written), fire (the job and the fire recorded in one append, idempotent by schedule and fire
time), run now, pause, resume, delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cairn.commands.planning.templates import load_template
from cairn.commands.runner import (
    RETRY_RECORD_TTL_S,
    CommandResult,
    Plan,
    command_id_for,
    id_for_key,
    load_states,
    run_command,
    writes,
)
from cairn.domain.decision import Decision
from cairn.domain.errors import CairnError, DomainError, NotFound, ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings, NormalizedJob
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.planning.schedule_events import schedule_event_from
from cairn.domain.planning.schedules import (
    Schedule,
    ScheduleInput,
    check_input,
    decide_create,
    decide_delete,
    decide_fire,
    decide_pause,
    decide_resume,
    evolve,
    fire_request,
    fire_text,
)
from cairn.domain.planning.templates import TemplateVersion, resolve
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore, Meta


def fold_schedule(events: list[Envelope]) -> Schedule | None:
    state: Schedule | None = None
    for e in events:
        state = evolve(state, schedule_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_schedule(store: EventStore, schedule_id: str) -> Schedule:
    found = (await load_states(store, [schedule_id], "schedule", fold_schedule)).get(schedule_id)
    if found is None:
        raise NotFound(f"schedule {schedule_id} does not exist", schedule_id=schedule_id)
    return found


def fire_job_id(keys: Keys, s: Schedule, fire_time: datetime, run_key: str | None = None) -> str:
    """The job of one fire: the same schedule and fire time (or run-now key) give the same id,
    so schedulers firing at once meet on one job."""
    which = f"run:{run_key}" if run_key else fire_text(fire_time)
    return id_for_key(keys, "job", s.project, f"schedule:{s.id}:{which}")


async def _template(store: EventStore, slug: str, number: int | None) -> TemplateVersion:
    try:
        return resolve(slug, await load_template(store, slug), number)
    except ValidationFailed as e:
        path = "template_version" if e.errors[0]["path"] == "version" else "template"
        raise ValidationFailed(e.message, [{**e.errors[0], "path": path}]) from e


async def _fire_job(
    store: EventStore, s: Schedule | ScheduleInput, contract: ContractSettings
) -> NormalizedJob:
    """The job a fire of `s` submits, normalized; faults named where the schedule holds them."""
    template = await _template(store, s.template, s.template_version) if s.template else None
    job_type, payload = fire_request(s, template)
    try:
        return normalize_job(job_type, payload, contract)
    except ValidationFailed as e:
        errors = [{**err, "path": f"job.{err['path']}"} for err in e.errors]
        raise ValidationFailed(f"the job a fire would submit is not valid: {e.message}",
                               errors) from e  # fmt: skip


async def create_schedule(
    store: EventStore, given: ScheduleInput, contract: ContractSettings, *, actor: str,
    idempotency_key: str | None = None,
) -> CommandResult:  # fmt: skip
    """A schedule whose fires would make a valid job (checked now: a bad one writes nothing)."""
    check_input(given)
    await _fire_job(store, given, contract)
    schedule_id = id_for_key(store.keys, "schedule", given.project, idempotency_key)

    async def plan() -> Plan:
        return Plan(writes=writes(decide_create(schedule_id, given), {}))

    return await run_command(
        store, schedule_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for("schedule", given.project, idempotency_key),
    )  # fmt: skip


async def fire_schedule(
    store: EventStore, schedule_id: str, fire_time: datetime, contract: ContractSettings, *,
    actor: str = "scheduler", run_key: str | None = None,
) -> tuple[CommandResult, str]:  # fmt: skip
    """Fire at `fire_time`: the job and the fire in one append. A cron fire at or before the
    last one writes nothing, so two schedulers firing the same time make one job; `run_key`
    makes it a run now (off the cron), once per key. A job that can no longer be made (its
    template changed, say) is recorded as a failed fire, with why."""
    first = [await load_schedule(store, schedule_id)]
    manual = run_key is not None
    job_id = fire_job_id(store.keys, first[0], fire_time, run_key)
    job: NormalizedJob | None = None
    error: CairnError | None = None
    try:
        job = await _fire_job(store, first[0], contract)
    except (ValidationFailed, DomainError) as e:
        error = e

    async def plan() -> Plan:
        current = first.pop() if first else await load_schedule(store, schedule_id)
        decision = decide_fire(current, fire_time, job_id, job, error, manual=manual)
        return Plan(writes=writes(decision, {schedule_id: current.version}),
                    subject_version=current.version)  # fmt: skip

    which = f"run:{run_key}" if manual else fire_text(fire_time)
    result = await run_command(
        store, schedule_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for("schedule-fire", schedule_id, which),
        command_ttl_s=RETRY_RECORD_TTL_S,
    )  # fmt: skip
    return result, job_id


async def run_schedule_now(
    store: EventStore, schedule_id: str, contract: ContractSettings, *, actor: str,
    idempotency_key: str | None = None,
) -> tuple[CommandResult, str]:  # fmt: skip
    """One fire now, off the cron (the cron's own fires are left as they were)."""
    now = datetime.now(UTC)
    key = idempotency_key or fire_text(now)
    return await fire_schedule(store, schedule_id, now, contract, actor=actor, run_key=key)


async def _change(store: EventStore, schedule_id: str, decide: Callable[[Schedule], Decision],
                  actor: str) -> CommandResult:  # fmt: skip
    async def plan() -> Plan:
        current = await load_schedule(store, schedule_id)
        decision = decide(current)
        return Plan(writes=writes(decision, {schedule_id: current.version}),
                    subject_version=current.version)  # fmt: skip

    return await run_command(store, schedule_id, plan, meta=Meta(actor=actor))


async def pause_schedule(store: EventStore, schedule_id: str, *, actor: str) -> CommandResult:
    return await _change(store, schedule_id, decide_pause, actor)


async def resume_schedule(store: EventStore, schedule_id: str, *, actor: str) -> CommandResult:
    """Active again from now: fires missed while paused are not made up."""
    return await _change(store, schedule_id, decide_resume, actor)


async def delete_schedule(store: EventStore, schedule_id: str, *, actor: str) -> CommandResult:
    return await _change(store, schedule_id, decide_delete, actor)
