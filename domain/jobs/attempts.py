"""A job's attempts on workers, as deciders: the claim, the lease that fences every later
write of the worker, a failed attempt (retried with backoff, dead-lettered, or failed for
good), a lease that ran out, and a delivery that never gets claimed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cairn.domain.errors import InvalidTransition, StaleLease
from cairn.domain.jobs.events import (
    JobCancelled,
    JobClaimed,
    JobDeadLettered,
    JobEvent,
    JobFailed,
    JobLeaseExpired,
)
from cairn.domain.jobs.job import ACTIVE, Job, JobStatus


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff `base_s * 2^(attempt-1)`, capped at `cap_s`."""

    base_s: float = 15.0
    cap_s: float = 600.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))


def decide_claim(
    job: Job, worker_id: str, epoch: int, lease_ms: int | None = None
) -> list[JobEvent]:
    """A worker takes a queued job at a new epoch, for a lease it keeps renewing."""
    if job.status != JobStatus.QUEUED:
        raise InvalidTransition(
            f"job {job.id} is {job.status}, not queued; it cannot be claimed", status=job.status
        )
    attempt = job.attempt if job.released else job.attempt + 1
    return [JobClaimed(worker_id=worker_id, epoch=epoch, attempt=attempt, lease_ms=lease_ms)]


def check_lease(job: Job, epoch: int) -> None:
    """Refuse a worker's write unless it still holds the job at `epoch` (fencing)."""
    if job.status not in ACTIVE or job.epoch != epoch:
        raise StaleLease(
            f"job {job.id} is no longer held at epoch {epoch} (now {job.status}, "
            f"epoch {job.epoch}); stop working on it",
            job_status=job.status,
            epoch=job.epoch,
        )


def cancelled_as_requested(job: Job) -> JobCancelled:
    """The end of a job whose cancel was requested while it ran."""
    return JobCancelled(reason=job.cancel_reason or "cancel requested")


def decide_fail(
    job: Job,
    epoch: int,
    error: dict[str, Any],
    now: datetime,
    policy: RetryPolicy,
    *,
    stage: str | None = None,
    retryable: bool = True,
    retry_after_s: float | None = None,
) -> list[JobEvent]:
    """A failed attempt: retried after a backoff (or the delay a rate-limiting vendor asked
    for, if longer) while attempts remain, else dead-lettered (retryable) or failed (not
    retryable). A pending cancel wins over a retry."""
    check_lease(job, epoch)
    if job.status == JobStatus.CANCEL_REQUESTED:
        return [
            JobFailed(epoch=epoch, error=error, stage=stage, retryable=False),
            cancelled_as_requested(job),
        ]
    if retryable and job.attempt < job.max_attempts:
        delay = max(policy.delay(job.attempt), retry_after_s or 0.0)
        retry_at = now + timedelta(seconds=delay)
        return [JobFailed(epoch=epoch, error=error, stage=stage, retry_at=_rfc3339(retry_at))]
    events: list[JobEvent] = [JobFailed(epoch=epoch, error=error, stage=stage, retryable=retryable)]
    if retryable:
        events.append(
            JobDeadLettered(
                reason={
                    "code": "attempts_exhausted",
                    "message": f"{job.attempt} of {job.max_attempts} attempts failed",
                    "job_id": job.id,
                    "attempt": job.attempt,
                    "error": error,
                }
            )
        )
    return events


def decide_lease_expired(job: Job, now: datetime, policy: RetryPolicy) -> list[JobEvent]:
    """The reaper takes a job back from a silent worker: retried, cancelled if a cancel was
    pending, or dead-lettered when no attempt is left."""
    if job.status not in ACTIVE:
        return []
    if job.status == JobStatus.CANCEL_REQUESTED:
        return [
            JobLeaseExpired(epoch=job.epoch, worker_id=job.worker_id or ""),
            cancelled_as_requested(job),
        ]
    if job.attempt < job.max_attempts:
        retry_at = _rfc3339(now + timedelta(seconds=policy.delay(job.attempt)))
        return [JobLeaseExpired(epoch=job.epoch, worker_id=job.worker_id or "", retry_at=retry_at)]
    return [
        JobLeaseExpired(epoch=job.epoch, worker_id=job.worker_id or ""),
        JobDeadLettered(
            reason={
                "code": "lease_expired",
                "message": "the worker stopped renewing its lease on the last attempt",
                "job_id": job.id,
                "attempt": job.attempt,
            }
        ),
    ]


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decide_poisoned(job: Job, reclaims: int) -> list[JobEvent]:
    """A job whose dispatch keeps being reclaimed unclaimed (it kills workers before they can
    claim it) is dead-lettered rather than dispatched forever."""
    if job.status != JobStatus.QUEUED:
        return []
    return [
        JobDeadLettered(
            reason={
                "code": "poison_message",
                "message": f"dispatched {reclaims} times and never claimed",
                "job_id": job.id,
                "attempt": job.attempt,
            }
        )
    ]
