"""Job events: the life of one executable unit in the queue, as facts in the past tense."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event


class JobEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


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
    follows: str | None = None  # a follow-up: the job it continues
    resume_session: str | None = None  # ... and that job's agent session it resumes


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


class JobFollowedUp(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A person asked for more on top of this job's work: `new_job_id` goes on with `message`."""

    TYPE: ClassVar[str] = "job.followed_up"
    new_job_id: str
    message: str


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
    """A file the attempt produced; `path` is where the artifact store serves it from
    (`attempt-<n>/<name>`), `size` and `sha256` bind the exact bytes to the log."""

    TYPE: ClassVar[str] = "job.artifact_added"
    epoch: int
    name: str
    ref: str
    size: int | None = None
    sha256: str | None = None
    path: str | None = None
    content_type: str | None = None
    truncated: bool = False  # cut at CAIRN_ARTIFACT_MAX_BYTES, with a marker line


class JobBranchResolved(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """Prepare settled the branches: the repository's default, the one checked out, the new
    one made for the job (if any) and the one the job's commits go to."""

    TYPE: ClassVar[str] = "job.branch_resolved"
    epoch: int
    repository: str
    default: str
    starting: str
    new: str | None
    working: str


class StepOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class JobStepStarted(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """One runtime invocation of the execute stage began (`index` counts from 1)."""

    TYPE: ClassVar[str] = "job.step_started"
    epoch: int
    index: int
    step_id: str
    title: str | None = None
    # The names of the environment variables the agent got from the worker (never a value),
    # and the agent: its CLI, version and the sign-in it used (`api key`, `login`, `gateway`).
    env: list[str] = []
    agent: dict[str, Any] | None = None
    # Where it ran: {"kind": "bubblewrap", "network", "user", "limits"}, or {"kind": "none",
    # "reason"} on a worker whose operator switched the sandbox off (CAIRN_SANDBOX=off).
    sandbox: dict[str, Any] | None = None


class JobStepFinished(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A step ended (`outcome`: a StepOutcome), with what it changed in the checkout and,
    when the runtime reports them, its tokens and cost (`usage`)."""

    TYPE: ClassVar[str] = "job.step_finished"
    epoch: int
    index: int
    step_id: str
    outcome: str
    exit_status: int | None = None
    duration_ms: int = 0
    files: int = 0
    insertions: int = 0
    deletions: int = 0
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    message: str | None = None  # the agent's last words (redacted, cut), when it said some
    session_id: str | None = None  # the CLI's session (a follow-up resumes it)
    refused_edits: list[str] = []  # edits the CLI refused the agent (its sandbox, permissions)
    transcript_entries: int = 0  # entries in transcript/step-N.jsonl


class PublishOutcome(StrEnum):
    """Written as the issue and the dashboard name them (`PUBLISHED_PR`, ...)."""

    PUBLISHED_PR = "PUBLISHED_PR"
    PUBLISHED_BRANCH = "PUBLISHED_BRANCH"
    NO_CHANGES = "NO_CHANGES"
    PUBLISH_DISABLED = "PUBLISH_DISABLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class JobPublished(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """What the publish stage did with the attempt's changes (`outcome`: a PublishOutcome)."""

    TYPE: ClassVar[str] = "job.published"
    epoch: int
    outcome: str
    branch: str | None = None
    pr_url: str | None = None
    commit: str | None = None
    detail: dict[str, Any] = {}


class JobPaused(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A person asked the job to hold; the worker waits at its next step boundary."""

    TYPE: ClassVar[str] = "job.paused"
    reason: str = ""


class JobResumed(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "job.resumed"


class JobOperatorMessage(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A person's note to the running agent; the worker hands it over before the next step."""

    TYPE: ClassVar[str] = "job.operator_message"
    text: str


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


class JobLiveSessionOpened(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A person opened a live session on the running job: `watch` (its terminal, read only)
    or `takeover` (a shell in its sandbox, the agent held meanwhile), until `expires_at`."""

    TYPE: ClassVar[str] = "job.live_session_opened"
    session_id: str
    mode: str  # watch, takeover
    actor: str
    ttl_s: int
    expires_at: str


class JobLiveSessionEnded(JobEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A live session ended: `why` is closed (by a person), handed_back, ttl, idle, job_ended,
    worker_lost or refused; a takeover's hand-back carries the person's note, and a session's
    recording its artifact (written by the worker that served it)."""

    TYPE: ClassVar[str] = "job.live_session_ended"
    session_id: str
    why: str
    actor: str | None = None
    note: str | None = None
    duration_s: float | None = None
    recording: dict[str, Any] | None = None  # {path, ref, sha256, size}


JOB_EVENTS: dict[str, type[JobEvent]] = {
    cls.TYPE: cls
    for cls in (
        JobSubmitted, JobLegacySubmitted, JobUpdated, JobCancelRequested, JobCancelled,
        JobResubmitted, JobPromoted, JobClaimed, JobStageStarted, JobStageFinished,
        JobArtifactAdded, JobSucceeded, JobFailed, JobLeaseExpired, JobReleased, JobDeadLettered,
        JobBranchResolved, JobStepStarted, JobStepFinished, JobPublished, JobPaused, JobResumed,
        JobOperatorMessage, JobFollowedUp, JobLiveSessionOpened, JobLiveSessionEnded,
    )
}  # fmt: skip


# (type, schema n) -> its data as schema n + 1; empty while every job event is at schema 1.
JOB_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def job_event_from(type_: str, schema: int, data: dict[str, Any]) -> JobEvent:
    """Rebuild a job event from its envelope's type, schema and data, upcast to the current
    schema (UnknownEvent for a type or schema not known here)."""
    return decode_event(JOB_EVENTS, JOB_UPCASTERS, type_, schema, data)
