"""Job events: the life of one executable unit in the queue, as facts in the past tense."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from cairn.domain.upcast import Upcaster, decode_event


class JobEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[int] = 1


class JobSubmitted(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.submitted"
    project: str
    job_type: str
    submitted_type: str
    source: str
    payload: Any  # as the user sent it
    normalized: dict[str, Any]
    required_capabilities: list[str]
    priority: int = 0
    max_attempts: int = 3
    affinity_key: str | None = None
    task_id: str | None = None
    resubmitted_from: str | None = None
    prompt: str | None = None  # quick actions


class JobLegacySubmitted(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A warning: the job came in a legacy shape and was normalized."""

    TYPE: ClassVar[str] = "job.legacy_submitted"
    submitted_type: str
    warnings: list[str] = []


class JobChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fields a job.updated sets; a field left out (UNSET) keeps its value. Written as
    the JSON object of the fields set, as it always was."""

    payload: Any = UNSET
    normalized: dict[str, Any] | UnsetType = UNSET
    required_capabilities: list[str] | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    max_attempts: int | UnsetType = UNSET
    affinity_key: str | UnsetType | None = UNSET


class JobUpdated(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.updated"
    changes: JobChanges


class JobCancelRequested(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.cancel_requested"
    reason: str = ""


class JobCancelled(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.cancelled"
    reason: str = ""


class JobResubmitted(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.resubmitted"
    new_job_id: str


class JobPromoted(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.promoted"
    task_id: str


class JobClaimed(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.claimed"
    worker_id: str
    epoch: int
    attempt: int
    lease_ms: int | None = None  # how long the worker may stay silent before it is reaped


class JobStageStarted(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.stage_started"
    stage: str
    epoch: int


class JobStageFinished(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.stage_finished"
    stage: str
    epoch: int
    outcome: str  # succeeded | failed | skipped
    detail: dict[str, Any] = {}


class JobArtifactAdded(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.artifact_added"
    epoch: int
    name: str
    ref: str


class JobSucceeded(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.succeeded"
    epoch: int
    summary: str = ""
    publish_outcome: str | None = None


class JobFailed(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """An attempt failed; `retry_at` set means it was re-queued for another attempt."""

    TYPE: ClassVar[str] = "job.failed"
    epoch: int
    error: dict[str, Any]
    stage: str | None = None
    retryable: bool = True
    retry_at: str | None = None


class JobLeaseExpired(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The worker holding the job stopped renewing its lease; the job was taken back."""

    TYPE: ClassVar[str] = "job.lease_expired"
    epoch: int
    worker_id: str
    retry_at: str | None = None


class JobReleased(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The worker gave the job back unfinished (it was stopping); no attempt is spent."""

    TYPE: ClassVar[str] = "job.released"
    epoch: int
    reason: str = ""


class JobDeadLettered(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.dead_lettered"
    reason: dict[str, Any]


JOB_EVENTS: dict[str, type[JobEvent]] = {
    cls.TYPE: cls
    for cls in (
        JobSubmitted, JobLegacySubmitted, JobUpdated, JobCancelRequested, JobCancelled,
        JobResubmitted, JobPromoted, JobClaimed, JobStageStarted, JobStageFinished,
        JobArtifactAdded, JobSucceeded, JobFailed, JobLeaseExpired, JobReleased, JobDeadLettered,
    )
}  # fmt: skip


# (type, schema n) -> its data as schema n + 1; empty while every job event is at schema 1.
JOB_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def job_event_from(type_: str, schema: int, data: dict[str, Any]) -> JobEvent:
    """Rebuild a job event from its envelope's type, schema and data, upcast to the current
    schema (UnknownEvent for a type or schema not known here)."""
    return decode_event(JOB_EVENTS, JOB_UPCASTERS, type_, schema, data)
