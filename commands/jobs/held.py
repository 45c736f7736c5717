"""A worker's writes on a job it holds.

Each write is appended at the version the worker last wrote, so it costs one round trip. A
version conflict means someone else wrote (a cancel request, the reaper): the job is re-read,
the lease re-checked (StaleLease once it is lost) and the write decided again. This is the
fencing of ARCHITECTURE.md without a read before every write.

The store may be unreachable for a while (a restart, a stall): a write is then retried with
backoff until it lands or the lease is lost. Each write carries a command id made of the
job, the epoch and the version it writes at, so a write whose reply was lost lands once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cairn.commands.jobs.job import load_job, with_its_task
from cairn.commands.runner import MAX_ATTEMPTS, RETRY_RECORD_TTL_S
from cairn.domain.errors import InfrastructureError, VersionConflict
from cairn.domain.jobs.attempts import RetryPolicy, cancelled_as_requested, check_lease, decide_fail
from cairn.domain.jobs.events import (
    JobEvent,
    JobReleased,
    JobStageFinished,
    JobStageStarted,
    JobSucceeded,
)
from cairn.domain.jobs.job import ACTIVE, Job, JobStatus, apply_events
from cairn.domain.jobs.live import end_all
from cairn.domain.tasks.states import Flags
from cairn.streams.envelope import now_rfc3339
from cairn.streams.store import EventStore, Meta

log = logging.getLogger("cairn.worker")
Stage = tuple[str, str, dict[str, Any]]  # a finished stage: name, outcome, detail
BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # between retries while the store is unavailable


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

        def cancel_if_requested(job: Job) -> list[JobEvent]:
            if job.status == JobStatus.CANCEL_REQUESTED:
                return [cancelled_as_requested(job)]
            return []

        return await self.write(cancel_if_requested)

    async def write(
        self, events_for_job: Callable[[Job], list[JobEvent]], *, outage_tries: int | None = None
    ) -> Job:
        """Append what is held back and what `events_for_job` makes of the job; when the job's
        status changes, its task (if any) follows in the same append. While the store is
        unavailable the write is retried (at most `outage_tries` times, if given)."""
        conflicts = outages = 0
        while True:
            try:
                return await self._write_once(events_for_job)
            except VersionConflict:
                conflicts += 1
                if conflicts >= MAX_ATTEMPTS:
                    raise
                await self._reload()
            except InfrastructureError as e:
                if outage_tries is not None and outages + 1 >= outage_tries:
                    raise
                pause = BACKOFF_S[min(outages, len(BACKOFF_S) - 1)]
                outages += 1
                if outages in (1, 10) or outages % 60 == 0:
                    log.warning("job %s: write waits for the store (%s)", self.job.id, e.message)
                await asyncio.sleep(pause)

    async def _write_once(self, events_for_job: Callable[[Job], list[JobEvent]]) -> Job:
        check_lease(self.job, self.epoch)
        events = [*self.buffer, *events_for_job(self.job)]
        if not events:
            return self.job
        after = apply_events(self.job, events, now_rfc3339())
        if after.live_sessions and after.status not in ACTIVE:
            # Its live sessions end with the attempt (done, failed, released, cancelled).
            ending = end_all(after, "job_ended")
            events, after = [*events, *ending], apply_events(after, ending, now_rfc3339())
        planned = await with_its_task(self.store, self.job, events, after, self.flags)
        partition = self.store.keys.partition_of_id(self.job.id)
        command = f"run:{self.job.id}:{self.epoch}:{self.job.version}"
        appended = await self.store.append(
            partition, planned, meta=Meta(actor=self.worker), command_id=command,
            command_ttl_s=RETRY_RECORD_TTL_S,
        )  # fmt: skip
        self.buffer = []
        if appended.duplicate:  # it had landed before a reply was lost: read what it wrote
            await self._reload()
        else:
            self.job = after
        return self.job

    async def _reload(self) -> None:
        self.job = await load_job(self.store, self.job.id)

    def hold_back(self, events: list[JobEvent]) -> None:
        """Events that go out with the next write (artifacts made on the way, say), so they
        cost no round trip of their own and are never lost to a failure that follows."""
        self.buffer += events

    async def succeed(self, finished: Stage, summary: str, publish_outcome: str | None) -> Job:
        """The last stage, what is held back (artifacts) and the success, in one append."""

        def succeeded(job: Job) -> list[JobEvent]:
            done = JobSucceeded(epoch=self.epoch, summary=summary, publish_outcome=publish_outcome)
            return [*self._closing(finished), done]

        return await self.write(succeeded)

    async def fail(self, stage: str, error: dict[str, Any], *, retryable: bool,
                   retry_after_s: float | None = None) -> Job:  # fmt: skip
        """The failed stage and the attempt's failure: re-queued with backoff (at least
        `retry_after_s`), dead-lettered, or failed for good (a pending cancel wins)."""

        def failed(job: Job) -> list[JobEvent]:
            closing = self._closing((stage, "failed", {"error": error}))
            outcome = decide_fail(job, self.epoch, error, datetime.now(UTC), self.policy,
                                  stage=stage, retryable=retryable,
                                  retry_after_s=retry_after_s)  # fmt: skip
            return [*closing, *outcome]

        return await self.write(failed)

    async def cancelled(self, stage: str | None, detail: dict[str, Any] | None = None) -> Job:
        """The worker stopped the job because its cancel was requested (`detail` says where:
        the step it stopped in)."""

        def stopped(job: Job) -> list[JobEvent]:
            closing = self._closing((stage, "cancelled", detail or {}) if stage else None)
            return [*closing, cancelled_as_requested(job)]

        return await self.write(stopped)

    async def release(self, stage: str | None, reason: str) -> Job:
        """Give the job back unfinished (the worker is stopping); no attempt is spent. A
        stopping worker does not wait long for the store: if this cannot land, the reaper
        takes the job back after its lease."""

        def released(job: Job) -> list[JobEvent]:
            closing = self._closing((stage, "released", {}) if stage else None)
            return [*closing, JobReleased(epoch=self.epoch, reason=reason)]

        return await self.write(released, outage_tries=5)

    async def refresh(self) -> Job:
        """The job as it is now (a cancel, a pause, an operator message may have come), read
        only when its version moved; StaleLease once the lease is lost. While the store is
        unreachable, the job as last known."""
        try:
            if await self.store.version(self.job.id) != self.job.version:
                self.job = await load_job(self.store, self.job.id)
        except InfrastructureError:
            return self.job
        check_lease(self.job, self.epoch)
        return self.job

    async def cancel_requested(self) -> bool:
        """Whether a cancel came in (see `refresh`)."""
        return (await self.refresh()).status == JobStatus.CANCEL_REQUESTED

    def _closing(self, finished: Stage | None) -> list[JobEvent]:
        if finished is None:
            return []
        name, outcome, detail = finished
        return [JobStageFinished(stage=name, epoch=self.epoch, outcome=outcome, detail=detail)]
