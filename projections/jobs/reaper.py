"""The reaper: takes a job back from a worker that stopped renewing the lease of its claim
(retried, cancelled if a cancel was pending, or dead-lettered), counts deliveries that were
never claimed (a poison job), sweeps jobs left running with no dispatch and no live worker,
and tidies dispatches of jobs that finished unsettled."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from cairn.commands.jobs.claims import expire_lease, write_job
from cairn.commands.jobs.job import load_job, load_jobs
from cairn.commands.settings import Settings
from cairn.domain.jobs.attempts import RetryPolicy, decide_poisoned
from cairn.domain.jobs.job import ACTIVE, TERMINAL, Job
from cairn.projections.jobs.queue import Queue
from cairn.streams.dispatch import Dispatch, Message
from cairn.streams.registry import Registry
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.reaper")
POISON_AFTER = 3
REAPER = "reaper"  # the consumer name the reaper takes messages under
SWEEP_EVERY_S, SWEEP_MARGIN_S = 5.0, 5.0


class Reaper:
    def __init__(
        self, store: EventStore, dispatch: Dispatch, registry: Registry, queue: Queue,
        settings: Settings, default_lease_ms: int,
    ) -> None:  # fmt: skip
        self.store, self.dispatch, self.registry, self.queue = store, dispatch, registry, queue
        self.settings, self.default_lease_ms = settings, default_lease_ms
        self.policy = RetryPolicy(settings.retry_base_s, settings.retry_cap_s)
        # After an outage seen by the scheduler, workers could not renew their leases either:
        # nothing is taken back before this (monotonic) time, so they renew first.
        self.not_before = 0.0
        self._swept_at = 0.0

    async def reap(self) -> None:
        """Take back jobs whose worker stopped renewing the lease of their claim; end jobs that
        hold no dispatch at all (an orphan: the safety net); tidy finished dispatches."""
        if time.monotonic() < self.not_before:
            return  # after an outage of ours, workers get a heartbeat to renew first
        workers = await self.registry.workers(include_stale=True)
        leases = {str(w["id"]): int(float(w.get("lease_s", 0)) * 1000) for w in workers}
        default = self.default_lease_ms
        shortest = min([default, *(lease for lease in leases.values() if lease)])
        overdue = [
            pending
            for sig in await self.dispatch.signatures()
            for pending in await self.dispatch.overdue(sig, shortest)
        ]
        if overdue:
            jobs = await load_jobs(self.store, [p.job_id for p in overdue if p.job_id])
            for pending in overdue:
                job = jobs.get(pending.job_id)
                # The lease of the claim; a message delivered and not claimed (its job still
                # queued) has its holder's lease, or the default for a holder long gone.
                if job is not None and job.status in ACTIVE and job.lease_ms:
                    lease = job.lease_ms
                else:
                    lease = leases.get(pending.consumer) or default
                if pending.idle_ms < lease and pending.consumer != REAPER:
                    continue
                message = await self.dispatch.take(pending, 0 if pending.consumer == REAPER
                                                   else lease)  # fmt: skip
                if message is not None:
                    await self._reclaimed(message)
        await self._tidy()
        if time.monotonic() - self._swept_at > SWEEP_EVERY_S:
            self._swept_at = time.monotonic()
            await self.sweep(workers)

    async def sweep(self, workers: list[dict[str, Any]]) -> None:
        """End the lease of running jobs that hold no pending dispatch and that no live worker
        runs: normally impossible (a worker settles only what it has finished), this is the
        net under whatever went wrong, so an operator never meets a job stuck running."""
        live = {job_id for w in workers if not w.get("stale") for job_id in w.get("running", [])}
        active = await self.dispatch.active()
        now = datetime.now(UTC)
        for status in ACTIVE:
            jobs, _ = await self.queue.list_jobs({"status": status}, None, 500)
            for job in jobs:
                if job.id in live or not _lease_over(job, now, self.default_lease_ms):
                    continue
                record = active.get(job.id)
                if record and await self.dispatch.is_pending(record["sig"], record["msg"]):
                    continue  # the reaper's path above takes it back when it is overdue
                log.warning("job %s is %s with no dispatch and no worker: taken back",
                            job.id, job.status)  # fmt: skip
                await expire_lease(self.store, job.id, job.epoch, self.settings.flags,
                                   self.policy)  # fmt: skip
                if record:
                    message = Message(record["sig"], record["msg"], job.id, 0, 0, "")
                    await self.dispatch.settle(job.id, message)

    async def _reclaimed(self, message: Message) -> None:
        """A message taken from a silent holder: expire the claim it led to (retry, cancel or
        dead-letter), count an unclaimed delivery (a poison job kills its workers before the
        claim), and settle it; a job the log shows finished is only settled, never re-run."""
        job = await load_job(self.store, message.job_id)
        if job.status in ACTIVE and job.version > message.version:
            await expire_lease(self.store, job.id, job.epoch, self.settings.flags, self.policy)
        elif job.status == "queued" and job.version == message.version:
            # Delivered, never claimed: the worker died before claiming. Count it.
            reclaims = await self.dispatch.count_reclaim(job.id)
            if reclaims >= POISON_AFTER:
                await write_job(
                    self.store,
                    job.id,
                    lambda j: decide_poisoned(j, reclaims),
                    self.settings.flags,
                    actor="reaper",
                )
        await self.dispatch.settle(job.id, message)

    async def _tidy(self) -> None:
        """Drop dispatch records of jobs that finished without a worker settling them (say,
        cancelled while waiting in a stream no worker read)."""
        active = await self.dispatch.active()
        if not active:
            return
        jobs = await self.queue.get_jobs(list(active))
        settled: list[tuple[str, Message]] = []
        for job_id, record in active.items():
            job = jobs.get(job_id)
            if job is not None and job.status in TERMINAL:
                message = Message(record["sig"], record["msg"], job_id, 0, 0, "")
                if not await self.dispatch.is_pending(record["sig"], record["msg"]):
                    settled.append((job_id, message))
        await self.dispatch.settle_many(settled)


def _lease_over(job: Job, now: datetime, default_ms: int) -> bool:
    """Whether the job's claim is older than its lease (and a margin for heartbeats)."""
    if not job.claimed_at:
        return False
    claimed = datetime.fromisoformat(job.claimed_at.replace("Z", "+00:00"))
    lease_s = (job.lease_ms or default_ms) / 1000
    return (now - claimed).total_seconds() > 2 * lease_s + SWEEP_MARGIN_S
