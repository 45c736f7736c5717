"""Orchestrator runs' commands: submit, approve, reject (by a person, or expired), cancel, and
a run following its jobs (`run_writes`, in the append of the job's own events)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from cairn.commands.orchestrator.services import load_services, service_id
from cairn.commands.runner import (
    CommandResult,
    Plan,
    command_id_for,
    id_for_key,
    load_states,
    run_command,
    writes,
)
from cairn.domain.decision import Decision
from cairn.domain.errors import NotFound
from cairn.domain.jobs.events import JobEvent
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.orchestrator.runs import (
    PROJECT,
    Run,
    RunRequest,
    check_request,
    decide_approve,
    decide_cancel,
    decide_on_job,
    decide_reject,
    decide_request,
    evolve,
    follows,
    merge,
    next_in_line,
    run_event_from,
    start_next,
)
from cairn.domain.orchestrator.services import Service, ServiceEvent, require
from cairn.domain.orchestrator.services import evolve as evolve_service
from cairn.streams.envelope import Envelope
from cairn.streams.store import EventStore, Meta, StreamWrite

EXPIRY_ACTOR = "cairn"  # who rejects a run whose approval expired


def fold_run(events: list[Envelope]) -> Run | None:
    state: Run | None = None
    for e in events:
        state = evolve(state, run_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_runs(store: EventStore, ids: Iterable[str]) -> dict[str, Run]:
    return await load_states(store, ids, "orun", fold_run)


async def load_run(store: EventStore, run_id: str) -> Run:
    found = (await load_runs(store, [run_id])).get(run_id)
    if found is None:
        raise NotFound(f"no orchestrator run {run_id}", run_id=run_id)
    return found


def new_job_id(store: EventStore) -> str:
    return store.keys.new_id("job", PROJECT)


async def submit_run(store: EventStore, request: RunRequest, settings: ContractSettings, *,
                     actor: str, approval_timeout_s: float, idempotency_key: str | None = None
                     ) -> CommandResult:  # fmt: skip
    """A new run on a service of the catalog; a refused request appends nothing."""
    runtime = check_request(request, settings)
    run_id = id_for_key(store.keys, "orun", PROJECT, idempotency_key)
    job_id = id_for_key(store.keys, "job", PROJECT,
                        f"plan:{idempotency_key}" if idempotency_key else None)  # fmt: skip

    async def plan() -> Plan:
        sid = service_id(store.keys, request.service)
        service = require((await load_services(store, [sid])).get(sid), request.service)
        decision = decide_request(run_id, service, request, runtime, actor=actor,
                                  plan_job_id=job_id,
                                  approval_timeout_s=approval_timeout_s)  # fmt: skip
        return Plan(writes=writes(decision, {run_id: 0, service.id: service.version, job_id: 0}))

    command = command_id_for("run", PROJECT, idempotency_key)
    return await run_command(store, run_id, plan, meta=Meta(actor=actor), command_id=command)


async def approve_run(store: EventStore, run_id: str, *, actor: str, four_eyes: bool
                      ) -> CommandResult:  # fmt: skip
    async def plan() -> Plan:
        run = await load_run(store, run_id)
        job_id = new_job_id(store)
        decision = decide_approve(run, actor, four_eyes=four_eyes, apply_job_id=job_id,
                                  now=datetime.now(UTC))  # fmt: skip
        return Plan(writes=writes(decision, {run.id: run.version, job_id: 0}),
                    subject_version=run.version)  # fmt: skip

    return await run_command(store, run_id, plan, meta=Meta(actor=actor))


async def reject_run(store: EventStore, run_id: str, reason: str, *, actor: str,
                     expired: bool = False) -> CommandResult:
    async def plan() -> Plan:
        run, service, waiting, job_id = await _with_line(store, run_id)
        after = start_next(service, run.id, waiting, job_id)
        decision = decide_reject(run, service, actor, reason, expired=expired, next_start=after)
        return Plan(writes=writes(decision, _versions(run, service, waiting, job_id)),
                    subject_version=run.version)  # fmt: skip

    return await run_command(store, run_id, plan, meta=Meta(actor=actor))


async def cancel_run_alone(store: EventStore, run_id: str, *, actor: str
                           ) -> tuple[CommandResult, Run]:  # fmt: skip
    """The run's side of a cancel: ended at once when no job of it runs, else marked (the
    caller cancels the job, whose end ends the run). Returns the run as it was read."""
    read: list[Run] = []

    async def plan() -> Plan:
        run, service, waiting, job_id = await _with_line(store, run_id)
        read[:] = [run]
        after = start_next(service, run.id, waiting, job_id)
        decision = decide_cancel(run, service, actor, next_start=after)
        return Plan(writes=writes(decision, _versions(run, service, waiting, job_id)),
                    subject_version=run.version)  # fmt: skip

    result = await run_command(store, run_id, plan, meta=Meta(actor=actor))
    return result, read[0]


async def _with_line(store: EventStore, run_id: str) -> tuple[Run, Service, list[Run], str]:
    """A run, its service, the runs waiting for it should this one end (in order), and an id
    for the plan job of the one that starts then."""
    run = await load_run(store, run_id)
    service = (await load_services(store, [run.service_id]))[run.service_id]
    return run, service, await _line(store, service, run.id), new_job_id(store)


async def _line(store: EventStore, service: Service, ended: str) -> list[Run]:
    ids = next_in_line(service, ended)
    found = await load_runs(store, ids)
    return [found[i] for i in ids if i in found]


def _versions(run: Run, service: Service, waiting: list[Run], job_id: str) -> dict[str, int]:
    found = {run.id: run.version, service.id: service.version, job_id: 0}
    found.update({w.id: w.version for w in waiting})
    return found


async def run_writes(store: EventStore, job: Job, events: Sequence[JobEvent], after: Job
                     ) -> list[StreamWrite]:  # fmt: skip
    """The run's side of its job's new events (nothing for a job of no run): read only when
    the job's status changed or a step began."""
    run_id = follows(job)
    if run_id is None or (after.status == job.status and not _step_began(events)):
        return []
    runs = await load_runs(store, [run_id])
    run = runs.get(run_id)
    if run is None or run.final:
        return []
    service = (await load_services(store, [run.service_id]))[run.service_id]
    apply_id = new_job_id(store)
    followed = decide_on_job(run, service, after, list(events), apply_job_id=apply_id,
                             now=datetime.now(UTC))
    decision: Decision = followed.decision
    versions = {run.id: run.version, service.id: service.version, apply_id: 0}
    if followed.ended:
        waiting = await _line(store, service, run.id)
        if waiting:
            next_job = new_job_id(store)
            released = _released(service, decision)
            decision = merge(decision, start_next(released, run.id, waiting, next_job))
            versions.update({**{w.id: w.version for w in waiting}, next_job: 0})
    return writes(decision, versions)


def _step_began(events: Sequence[JobEvent]) -> bool:
    return any(e.TYPE == "job.step_started" for e in events)


def _released(service: Service, decision: Decision) -> Service:
    """The service as the decision leaves it (the run ending has let go of it)."""
    state = service
    for event in decision.get(service.id, []):
        assert isinstance(event, ServiceEvent)
        state = evolve_service(state, event, service.id, state.version + 1, "")
    return state
