"""The Job aggregate as a decider: one executable unit in the queue, from submission through
claims, stages and retries to an outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec
from msgspec import UNSET

from cairn.domain.changes import kept
from cairn.domain.decision import Decision
from cairn.domain.errors import CorruptStream, InvalidTransition, ValidationFailed
from cairn.domain.jobs.events import (
    JobArtifactAdded,
    JobBranchResolved,
    JobCancelled,
    JobCancelRequested,
    JobChanges,
    JobClaimed,
    JobDeadLettered,
    JobEvent,
    JobFailed,
    JobFollowedUp,
    JobLeaseExpired,
    JobLegacySubmitted,
    JobLiveSessionEnded,
    JobLiveSessionOpened,
    JobOperatorMessage,
    JobPaused,
    JobPromoted,
    JobPublished,
    JobReleased,
    JobResubmitted,
    JobResumed,
    JobStageFinished,
    JobStageStarted,
    JobStepFinished,
    JobStepStarted,
    JobSubmitted,
    JobSucceeded,
    JobUpdated,
)
from cairn.domain.jobs.kinds import NormalizedJob
from cairn.domain.jobs.steps import step_finished, step_started
from cairn.domain.jobs.usage import add_usage


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCEL_REQUESTED = "cancel_requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTER = "dead_letter"


class JobSource(StrEnum):
    QUEUE = "queue"
    BOARD = "board"
    QUICK_ACTION = "quick_action"
    PROPOSAL = "proposal"
    SCHEDULE = "schedule"
    ORCHESTRATOR = "orchestrator"  # an orchestrator run's plan or apply job


TERMINAL = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD_LETTER}
)
ACTIVE = frozenset({JobStatus.RUNNING, JobStatus.CANCEL_REQUESTED})
RESUBMITTABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD_LETTER})


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """`worker_id` is the worker holding the job; once finished, the one that ran it last.
    `stages` and `steps` are the current (or last) attempt's; `branches` and `publish` the
    last ones resolved and published, each naming its attempt."""

    id: str
    version: int
    project: str
    job_type: str
    submitted_type: str
    source: str
    payload: Any
    normalized: dict[str, Any]
    required_capabilities: list[str]
    priority: int = 0
    max_attempts: int = 3
    affinity_key: str | None = None
    task_id: str | None = None
    status: str = JobStatus.QUEUED.value
    attempt: int = 0
    epoch: int = 0
    worker_id: str | None = None
    lease_ms: int | None = None  # the lease of the current (or last) claim
    released: bool = False  # the last attempt was given back unspent
    not_before: str | None = None
    stages: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    branches: dict[str, Any] | None = None
    publish: dict[str, Any] | None = None
    paused: bool = False  # the worker holds at its next step boundary
    pause_reason: str | None = None
    operator_messages: list[dict[str, Any]] = []  # {id: the event's version, text, ts}
    # Live sessions: those open now, and those ended (with their recordings), the last 50.
    live_sessions: list[dict[str, Any]] = []  # {session_id, mode, actor, expires_at, opened_at}
    live_ended: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    usage: dict[str, Any] | None = None  # tokens and cost over every step of every attempt
    outcome: dict[str, Any] | None = None
    warnings: list[str] = []
    resubmitted_from: str | None = None
    resubmitted_as: str | None = None
    follows: str | None = None  # a follow-up: the job it continues, and that job's session
    resume_session: str | None = None
    followed_by: list[dict[str, Any]] = []  # {job_id, message}: the follow-ups asked of it
    promoted_task_id: str | None = None
    prompt: str | None = None
    cancel_reason: str | None = None
    created_at: str = ""
    updated_at: str = ""
    claimed_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


# ---- evolve -------------------------------------------------------------------------------


def evolve(state: Job | None, event: JobEvent, job_id: str, version: int, ts: str) -> Job:
    """The state after `event`; a stream whose events are not in version order, or that does
    not start with its submission, is corrupt (CorruptStream: reloading cannot help)."""
    expected = 1 if state is None else state.version + 1
    if version != expected:
        raise CorruptStream(
            f"job {job_id}: event version {version} follows version {expected - 1} "
            f"(expected {expected}); the stream is corrupt",
            aggregate_id=job_id,
            version=version,
            expected_version=expected,
        )
    if isinstance(event, JobSubmitted):
        return Job(
            id=job_id, version=1, created_at=ts, updated_at=ts, **msgspec.structs.asdict(event)
        )
    if state is None:
        raise CorruptStream(
            f"job {job_id}: version 1 is {event.TYPE}, not job.submitted; the stream is corrupt",
            aggregate_id=job_id,
            version=version,
        )
    after = _apply(state, event, ts)
    if after.paused and after.status in TERMINAL:  # a finished job holds nowhere
        after = msgspec.structs.replace(after, paused=False, pause_reason=None)
    return msgspec.structs.replace(after, version=version, updated_at=ts)


def apply_events(job: Job, events: list[JobEvent], ts: str) -> Job:
    """The job after `events` are appended to it (what a writer expects to have written)."""
    for event in events:
        job = evolve(job, event, job.id, job.version + 1, ts)
    return job


def _apply(s: Job, e: JobEvent, ts: str) -> Job:
    replace = msgspec.structs.replace
    match e:
        case JobLegacySubmitted(warnings=warnings):
            return replace(s, warnings=[*s.warnings, *warnings])
        case JobUpdated(changes=c):
            return replace(
                s,
                payload=kept(c.payload, s.payload),
                normalized=kept(c.normalized, s.normalized),
                required_capabilities=kept(c.required_capabilities, s.required_capabilities),
                priority=kept(c.priority, s.priority),
                max_attempts=kept(c.max_attempts, s.max_attempts),
                affinity_key=kept(c.affinity_key, s.affinity_key),
            )
        case JobCancelRequested(reason=reason):
            return replace(s, status=JobStatus.CANCEL_REQUESTED.value, cancel_reason=reason)
        case JobCancelled(reason=reason):
            return replace(
                s,
                status=JobStatus.CANCELLED.value,
                cancel_reason=reason,
                finished_at=ts,
            )
        case JobResubmitted(new_job_id=new):
            return replace(s, resubmitted_as=new)
        case JobFollowedUp(new_job_id=new, message=asked):
            return replace(s, followed_by=[*s.followed_by, {"job_id": new, "message": asked}])
        case JobPromoted(task_id=task_id):
            return replace(s, promoted_task_id=task_id)
        case JobClaimed():
            return replace(
                s,
                status=JobStatus.RUNNING.value,
                worker_id=e.worker_id,
                epoch=e.epoch,
                attempt=e.attempt,
                lease_ms=e.lease_ms,
                released=False,
                claimed_at=ts,
                started_at=s.started_at or ts,
                not_before=None,
                stages=[],
                steps=[],
            )
        case JobStageStarted(stage=stage):
            return replace(
                s,
                stages=[
                    *s.stages,
                    {"stage": stage, "status": "running", "started_at": ts, "attempt": s.attempt},
                ],
            )
        case JobStageFinished(stage=stage, outcome=result, detail=detail):
            stages = [
                {**st, "status": result, "finished_at": ts, "detail": detail}
                if st["stage"] == stage and st["status"] == "running"
                else st
                for st in s.stages
            ]
            return replace(s, stages=stages)
        case JobArtifactAdded():
            return replace(s, artifacts=[*s.artifacts, {**_fact(e), "attempt": s.attempt}])
        case JobBranchResolved():
            return replace(s, branches={**_fact(e), "attempt": s.attempt})
        case JobStepStarted():
            return replace(s, steps=step_started(s.steps, e, ts))
        case JobStepFinished():
            usage = add_usage(s.usage, e.usage)
            return replace(s, steps=step_finished(s.steps, e, ts), usage=usage)
        case JobPublished():
            return replace(s, publish={**_fact(e), "attempt": s.attempt})
        case JobPaused(reason=reason):
            return replace(s, paused=True, pause_reason=reason)
        case JobResumed():
            return replace(s, paused=False, pause_reason=None)
        case JobLiveSessionOpened():
            opened = {**_fact(e), "opened_at": ts}
            return replace(s, live_sessions=[*s.live_sessions, opened])
        case JobLiveSessionEnded(session_id=sid):
            found = next((x for x in s.live_sessions if x["session_id"] == sid), None)
            if found is None:
                return s
            closing = {k: v for k, v in _fact(e).items() if k != "actor"}
            ended = {**found, **closing, "ended_by": e.actor, "ended_at": ts}
            return replace(s, live_sessions=[x for x in s.live_sessions if x is not found],
                           live_ended=[*s.live_ended, ended][-50:])  # fmt: skip
        case JobOperatorMessage(text=text):
            message = {"id": s.version + 1, "text": text, "ts": ts}  # evolve checked the version
            return replace(s, operator_messages=[*s.operator_messages, message])
        case JobSucceeded():
            success = {
                "status": "succeeded",
                "summary": e.summary,
                "publish_outcome": e.publish_outcome,
            }
            return replace(s, status=JobStatus.SUCCEEDED.value, outcome=success, finished_at=ts)
        case JobFailed():
            failure: dict[str, Any] = {
                "status": "failed",
                "error": e.error,
                "stage": e.stage,
                "retryable": e.retryable,
                "attempt": s.attempt,
            }
            if e.retry_at is not None:
                return replace(
                    s,
                    status=JobStatus.QUEUED.value,
                    not_before=e.retry_at,
                    outcome=failure,
                    worker_id=None,
                )
            return replace(s, status=JobStatus.FAILED.value, outcome=failure, finished_at=ts)
        case JobLeaseExpired(retry_at=retry_at):
            return replace(s, status=JobStatus.QUEUED.value, not_before=retry_at, worker_id=None)
        case JobReleased():
            return replace(s, status=JobStatus.QUEUED.value, worker_id=None, released=True)
        case JobDeadLettered(reason=reason):
            return replace(
                s,
                status=JobStatus.DEAD_LETTER.value,
                finished_at=ts,
                outcome={**(s.outcome or {}), "status": "dead_letter", "reason": reason},
            )
    raise TypeError(f"not a job event: {e!r}")


# ---- decide: submission and queue management ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    project: str = "default"
    source: JobSource = JobSource.QUEUE
    priority: int = 0
    max_attempts: int = 3
    affinity_key: str | None = None
    task_id: str | None = None
    resubmitted_from: str | None = None
    prompt: str | None = None


def _fact(e: JobEvent) -> dict[str, Any]:
    """An event's fields as the job keeps them (the attempt's epoch is the job's own)."""
    return {k: v for k, v in msgspec.structs.asdict(e).items() if k != "epoch"}


def decide_submit(job: NormalizedJob, options: SubmitOptions) -> list[JobEvent]:
    """A new job; a job that needs no capability could never be routed, so it is refused."""
    if not job.required_capabilities:
        raise ValidationFailed(
            "the job needs no capability, so no worker could be chosen for it",
            [{"path": "payload", "reason": "no required capabilities derived or given"}],
        )
    events: list[JobEvent] = [
        JobSubmitted(
            project=options.project,
            job_type=job.job_type,
            submitted_type=job.submitted_type,
            source=options.source.value,
            payload=job.original,
            normalized=job.normalized,
            required_capabilities=job.required_capabilities,
            priority=options.priority,
            max_attempts=options.max_attempts,
            affinity_key=options.affinity_key,
            task_id=options.task_id,
            resubmitted_from=options.resubmitted_from,
            prompt=options.prompt,
        )
    ]
    if job.is_legacy or job.warnings:
        events.append(JobLegacySubmitted(submitted_type=job.submitted_type, warnings=job.warnings))
    return events


def _not_a_run_s(job: Job, what: str) -> None:
    """An orchestrator run's job is the run's to make and end: it is not changed, resubmitted
    or followed up by itself (the run would not know it)."""
    if job.source == JobSource.ORCHESTRATOR:
        run = (job.normalized.get("orchestrator") or {}).get("run")
        raise InvalidTransition(
            f"job {job.id} is a step of orchestrator run {run}; it is not {what} on its own: "
            f"start a new run (POST /api/orchestrator/runs)", source=job.source, run_id=run)


def decide_update(job: Job, changes: JobChanges) -> list[JobEvent]:
    """Change a queued job's payload or options; nothing once a worker may have it, nor when
    every value is already as asked."""
    _not_a_run_s(job, "changed")
    if job.status != JobStatus.QUEUED:
        raise InvalidTransition(
            f"job {job.id} is {job.status}; only a queued job can be changed",
            job_status=job.status,
            allowed_statuses=[JobStatus.QUEUED.value],
        )
    changed = {
        k: v for k, v in msgspec.structs.asdict(changes).items()
        if v is not UNSET and getattr(job, k) != v
    }  # fmt: skip
    return [JobUpdated(changes=JobChanges(**changed))] if changed else []


def decide_cancel(job: Job, reason: str = "") -> list[JobEvent]:
    """Queued: cancelled at once. Running: cancel requested (the worker stops at its next
    checkpoint). Already cancelled or requested: nothing (a repeat is a no-op)."""
    if job.status == JobStatus.QUEUED:
        return [JobCancelled(reason=reason)]
    if job.status == JobStatus.RUNNING:
        return [JobCancelRequested(reason=reason)]
    if job.status in {JobStatus.CANCEL_REQUESTED, JobStatus.CANCELLED}:
        return []
    raise InvalidTransition(
        f"job {job.id} already finished ({job.status}); there is nothing to cancel",
        job_status=job.status,
        allowed_statuses=["queued", "running"],
    )


def decide_resubmit(job: Job, new_job_id: str) -> Decision:
    """A new job from a failed, cancelled or dead-lettered one, linked both ways; once only."""
    if job.status not in RESUBMITTABLE:
        raise InvalidTransition(
            f"job {job.id} is {job.status}; only a failed, cancelled or dead-lettered job can "
            "be resubmitted",
            job_status=job.status,
            allowed_statuses=sorted(RESUBMITTABLE),
        )
    _not_a_run_s(job, "resubmitted")
    if job.source == JobSource.BOARD:
        raise InvalidTransition(
            f"job {job.id} is a run of task {job.task_id}; a board task's run is retried from "
            f"the task (POST /api/v2/tasks/{job.task_id}/retry), so the task follows it",
            source=job.source,
            task_id=job.task_id,
        )
    if job.resubmitted_as is not None:
        return {}
    return {
        job.id: [JobResubmitted(new_job_id=new_job_id)],
        new_job_id: [_resubmission(job)],
    }


def _resubmission(job: Job) -> JobSubmitted:
    """The submission event of the job that replaces `job`."""
    return JobSubmitted(
        project=job.project,
        job_type=job.job_type,
        submitted_type=job.submitted_type,
        source=job.source,
        payload=job.payload,
        normalized=job.normalized,
        required_capabilities=job.required_capabilities,
        priority=job.priority,
        max_attempts=job.max_attempts,
        affinity_key=job.affinity_key,
        task_id=job.task_id,
        resubmitted_from=job.id,
        prompt=job.prompt,
    )


def decide_promote(job: Job, task_id: str) -> list[JobEvent]:
    """Link a quick action to the board task made from it; once only."""
    if job.source != JobSource.QUICK_ACTION:
        raise InvalidTransition(
            f"job {job.id} is not a quick action (source {job.source}); only quick actions are "
            "promoted",
            source=job.source,
        )
    return [] if job.promoted_task_id else [JobPromoted(task_id=task_id)]
