"""A person's controls over a job in the queue or on a worker: pause it at the next step
boundary, resume it, and leave a message for the agent. Each is a decider over the Job."""

from __future__ import annotations

from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.jobs.events import JobEvent, JobOperatorMessage, JobPaused, JobResumed
from cairn.domain.jobs.job import TERMINAL, Job, JobStatus

MAX_MESSAGE = 4_000  # characters of one operator message, once stripped
MAX_MESSAGES = 200  # per job: past this the job's document would grow without bound
PAUSABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
MESSAGEABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


def decide_pause(job: Job, reason: str = "") -> list[JobEvent]:
    """Hold a queued or running job at its next step boundary (a queued one may still be
    claimed: its worker holds before the first step). A paused job: nothing."""
    if job.status not in PAUSABLE:
        stopping = " (it is stopping: a cancel was requested)" if job.status not in TERMINAL else ""
        raise InvalidTransition(
            f"job {job.id} is {job.status}{stopping}; only a queued or running job can be paused",
            job_status=job.status,
            allowed_statuses=sorted(PAUSABLE),
        )
    return [] if job.paused else [JobPaused(reason=reason)]


def decide_resume(job: Job) -> list[JobEvent]:
    """Let a paused job go on; a job that is not paused (and not finished): nothing."""
    if job.status in TERMINAL:
        raise InvalidTransition(
            f"job {job.id} already finished ({job.status}); there is nothing to resume",
            job_status=job.status,
            allowed_statuses=sorted(s.value for s in set(JobStatus) - TERMINAL),
        )
    return [JobResumed()] if job.paused else []


def decide_operator_message(job: Job, text: str) -> list[JobEvent]:
    """A note for the agent of a queued or running job (1 to MAX_MESSAGE characters once
    stripped); the worker hands it over before the next step."""
    stripped = text.strip()
    if not 1 <= len(stripped) <= MAX_MESSAGE:
        reason = f"must be 1 to {MAX_MESSAGE} characters once stripped, not {len(stripped)}"
        raise ValidationFailed(f"text {reason}", [{"path": "text", "reason": reason}])
    if job.status not in MESSAGEABLE:
        raise InvalidTransition(
            f"job {job.id} is {job.status}; messages go only to a queued or running job",
            job_status=job.status,
            allowed_statuses=sorted(MESSAGEABLE),
        )
    if len(job.operator_messages) >= MAX_MESSAGES:
        raise InvalidTransition(
            f"job {job.id} already holds {MAX_MESSAGES} operator messages; no more are taken",
            max_messages=MAX_MESSAGES,
        )
    return [JobOperatorMessage(text=stripped)]
