"""A worker's writes on a job it holds.

Each write is appended at the version the worker last wrote, so it costs one round trip. A
version conflict means someone else wrote (a cancel request, the reaper): the job is re-read,
the lease re-checked (StaleLease once it is lost) and the write decided again. This is the
fencing of ARCHITECTURE.md without a read before every write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cairn.commands.jobs import load_job
from cairn.commands.runner import MAX_ATTEMPTS, writes
from cairn.commands.runs import with_its_task
from cairn.domain.errors import VersionConflict
from cairn.domain.job import (
    Job,
    JobStatus,
    RetryPolicy,
    apply_events,
    cancelled_as_requested,
    check_lease,
    decide_fail,
)
from cairn.domain.job_events import (
    JobArtifactAdded,
    JobEvent,
    JobReleased,
    JobStageFinished,
    JobStageStarted,
    JobSucceeded,
)
from cairn.domain.task_states import Flags
from cairn.streams.envelope import now_rfc3339
from cairn.streams.store import EventStore, Meta

Stage = tuple[str, str, dict[str, Any]]  # a finished stage: name, outcome, detail


@dataclass
class Held:
    """The job as of this worker's last write, and what the worker needs to write more."""

    store: EventStore
    job: Job
    worker: str
    flags: Flags
    policy: RetryPolicy

    def __post_init__(self) -> None:
        self.epoch = self.job.epoch
        self.buffer: list[JobEvent] = []

    def open_stage(self, finished: Stage | None, start: str) -> None:
        """Close the last stage and open the next. Held back until the worker is about to
        wait on something (`flush`) or writes anything else, so instant stages cost no round
        trip; every event is still written, in order."""
        self.buffer += [*self._closing(finished), JobStageStarted(stage=start, epoch=self.epoch)]

    async def flush(self) -> Job:
        """Write what is held back; a pending cancel closes the job instead (status
        `cancelled` on return)."""

        def decide(job: Job) -> list[JobEvent]:
            if job.status == JobStatus.CANCEL_REQUESTED:
                return [cancelled_as_requested(job)]
            return []

        return await self.write(decide)

    async def write(self, decide: Callable[[Job], list[JobEvent]]) -> Job:
        """Append what is held back and what `decide` makes of the job; when the job's
        status changes, its task (if any) follows in the same append."""
        for _ in range(MAX_ATTEMPTS):
            check_lease(self.job, self.epoch)
            events = [*self.buffer, *decide(self.job)]
            if not events:
                return self.job
            after = apply_events(self.job, events, now_rfc3339())
            decision = await with_its_task(self.store, self.job, events, after, self.flags)
            partition = self.store.keys.partition_of_id(self.job.id)
            try:
                await self.store.append(partition, writes(decision), meta=Meta(actor=self.worker))
            except VersionConflict:
                self.job = await load_job(self.store, self.job.id)
                continue
            self.job, self.buffer = after, []
            return after
        raise VersionConflict(f"job {self.job.id} kept changing under worker {self.worker}")

    async def succeed(self, finished: Stage, artifacts: list[tuple[str, str]], summary: str,
                      publish_outcome: str | None) -> Job:  # fmt: skip
        """The last stage, the artifacts and the success, in one append."""

        def decide(job: Job) -> list[JobEvent]:
            added = [JobArtifactAdded(epoch=self.epoch, name=n, ref=r) for n, r in artifacts]
            done = JobSucceeded(epoch=self.epoch, summary=summary, publish_outcome=publish_outcome)
            return [*self._closing(finished), *added, done]

        return await self.write(decide)

    async def fail(self, stage: str, error: dict[str, Any], *, retryable: bool) -> Job:
        """The failed stage and the attempt's failure: re-queued with backoff, dead-lettered,
        or failed for good (a pending cancel wins)."""

        def decide(job: Job) -> list[JobEvent]:
            closing = self._closing((stage, "failed", {"error": error}))
            outcome = decide_fail(job, self.epoch, error, datetime.now(UTC), self.policy,
                                  stage=stage, retryable=retryable)  # fmt: skip
            return [*closing, *outcome]

        return await self.write(decide)

    async def cancelled(self, stage: str | None) -> Job:
        """The worker stopped the job because its cancel was requested."""

        def decide(job: Job) -> list[JobEvent]:
            closing = self._closing((stage, "cancelled", {}) if stage else None)
            return [*closing, cancelled_as_requested(job)]

        return await self.write(decide)

    async def release(self, stage: str | None, reason: str) -> Job:
        """Give the job back unfinished (the worker is stopping); no attempt is spent."""

        def decide(job: Job) -> list[JobEvent]:
            closing = self._closing((stage, "released", {}) if stage else None)
            return [*closing, JobReleased(epoch=self.epoch, reason=reason)]

        return await self.write(decide)

    async def cancel_requested(self) -> bool:
        """Whether a cancel came in; reads the job only when its version moved (StaleLease if
        the lease was lost meanwhile)."""
        if await self.store.version(self.job.id) == self.job.version:
            return False
        self.job = await load_job(self.store, self.job.id)
        check_lease(self.job, self.epoch)
        return self.job.status == JobStatus.CANCEL_REQUESTED

    def _closing(self, finished: Stage | None) -> list[JobEvent]:
        if finished is None:
            return []
        name, outcome, detail = finished
        return [JobStageFinished(stage=name, epoch=self.epoch, outcome=outcome, detail=detail)]
