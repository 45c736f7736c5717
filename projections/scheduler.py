"""The scheduler, a process manager: feeds dispatch streams just in time in run order within
the limits, runs ready board tasks, moves dependents on, and reaps expired leases.

Several schedulers may run; one leads (a lease). The dispatch script refuses a caller that
does not lead and a job that is still active, so no job is dispatched twice (decision 0002).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cairn.commands.jobs import load_job, load_jobs
from cairn.commands.runs import expire_lease, request_task_run, write_job
from cairn.commands.settings import Settings
from cairn.commands.tasks import transition_task
from cairn.domain.dispatch import eligible, run_order_key
from cairn.domain.errors import CairnError
from cairn.domain.job import ACTIVE, TERMINAL, Job, RetryPolicy, decide_poisoned
from cairn.domain.task import can_become_ready
from cairn.domain.task_states import Status
from cairn.projections.board import Board
from cairn.projections.queue import NAME as QUEUE
from cairn.projections.queue import Queue
from cairn.projections.runner import HOLD_LUA, RELEASE_LUA, Space, positions
from cairn.streams.connection import Client
from cairn.streams.dispatch import GROUP, Dispatch, Dispatchable, Limits, Message
from cairn.streams.envelope import position_key, text
from cairn.streams.keys import Keys
from cairn.streams.registry import Registry
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.scheduler")
POISON_AFTER = 3
REAPER = "reaper"  # the consumer name the reaper takes messages under
SWEEP_MARGIN_S = 5.0
OUTAGE_S, OUTAGE_GRACE_S = 2.0, 12.0  # a heartbeat is at most 5 s: two of them and a margin
# Undelivered messages a signature's stream may hold, per job its takers run at once. One
# round refills up to this many times its takers' slots, so under load rounds (each a few
# round trips on a busy server) keep up; order bends by at most that many jobs.
PREFETCH = 2


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    limits: Limits = field(default_factory=Limits)
    tick_s: float = 0.05
    leader_lease_ms: int = 5_000
    default_lease_ms: int = 120_000
    board_every_s: float = 0.25
    reap_every_s: float = 0.5
    sweep_every_s: float = 5.0
    idle_s: float = 0.25


class Scheduler:
    def __init__(self, client: Client, settings: Settings, config: SchedulerConfig) -> None:
        self.client, self.settings, self.config = client, settings, config
        self.keys = Keys(settings.prefix, settings.partitions)
        self.store = EventStore(client, self.keys, settings.command_ttl_s)
        self.dispatch = Dispatch(client, self.keys)
        self.registry = Registry(client, self.keys)
        self.queue, self.board = Queue(client, self.keys), Board(client, self.keys)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.policy = RetryPolicy(settings.retry_base_s, settings.retry_cap_s)
        self._board_at = self._reap_at = self._swept_at = 0.0
        # After a round that could not reach the store, workers could not renew their leases
        # either: the reaper waits for them to renew before it takes anything back.
        self._reap_after = 0.0
        self._reached_at = time.monotonic()
        self._log_ends: dict[Any, Any] | None = None
        # The last round left work that may go soon without a new event: it skipped jobs the
        # read model showed out of date, or a limit held some (a settle frees it, silently).
        self._again = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # A round sees what woke it only once the queue read model has applied it; until
            # a round has run on a caught-up read model, the next comes after a tick instead
            # of after the next event.
            caught_up = False
            try:
                # The queue read model's generations, read once a round (a rebuild switches
                # them; a round on the old one only sees a little less).
                spaces = await self.queue.spaces()
                # Independent reads go side by side: under load a round's round trips, one
                # after the other, were most of its time.
                caught_up, leading, workers = await asyncio.gather(
                    self._queue_caught_up(spaces), self._lead(), self.registry.workers()
                )
                if leading:
                    await self.tick(spaces, workers)
                self._reached(time.monotonic())
            except CairnError as e:
                log.warning("scheduler tick: %s", e.message)
            await _wait(stop, self.config.tick_s)
            if caught_up and not self._again:
                await self._until_something_happens(stop)
        with contextlib.suppress(CairnError):
            await self.client.eval(RELEASE_LUA, 1, self.dispatch.leader_key, self.token)

    def _reached(self, now: float) -> None:
        """A round reached the store; after a gap (an outage, a stall) the reaper waits a few
        heartbeats, so that workers that could not renew meanwhile renew first."""
        if now - self._reached_at > OUTAGE_S:
            self._reap_after = now + OUTAGE_GRACE_S
            log.warning("the store was out of reach for %.1fs", now - self._reached_at)
        self._reached_at = now

    async def _until_something_happens(self, stop: asyncio.Event) -> None:
        """Wait for new events on any partition log, at most `idle_s`: an idle scheduler
        does a round a few times a second, a busy one as often as `tick_s` allows."""
        if self._log_ends is None:
            found: dict[Any, Any] = {}
            try:
                for p in self.keys.all_partitions():
                    last = await self.client.xrevrange(self.keys.log(p), count=1)
                    found[self.keys.log(p)] = last[0][0] if last else b"0-0"
            except CairnError:
                return
            self._log_ends = found
        with contextlib.suppress(CairnError):
            block = int(self.config.idle_s * 1000)
            # One entry a log is enough to know something happened; then the woken logs'
            # ends are read (parsing every event since the last round cost more than the
            # round).
            reply: Any = await self.client.xread(self._log_ends, count=1, block=block)
            woken = [text(key) for key, _ in reply or []]
            if woken:
                async with self.client.pipeline(transaction=False) as pipe:
                    for key in woken:
                        pipe.xrevrange(key, count=1)
                    ends = await pipe.execute()
                for (key, entries), last in zip(reply, ends, strict=True):
                    # The entry that woke us, if the log was emptied meanwhile (a reset).
                    self._log_ends[text(key)] = last[0][0] if last else entries[-1][0]

    async def _queue_caught_up(self, spaces: dict[int, Space]) -> bool:
        """Whether the queue read model has applied every event we have seen in the logs
        (a job submitted a moment ago is runnable only once it has)."""
        if not self._log_ends:
            return True
        applied = await positions(self.client, self.keys, QUEUE, spaces)
        return all(
            position_key(applied[self.keys.partition_of_log(text(log))]) >= position_key(text(end))
            for log, end in self._log_ends.items()
        )

    async def _lead(self) -> bool:
        """Take the leader lease if free, or renew it if ours, in one atomic call."""
        leader, lease = self.dispatch.leader_key, self.config.leader_lease_ms
        return bool(await self.client.eval(HOLD_LUA, 1, leader, self.token, lease))

    async def tick(self, spaces: dict[int, Space], workers: list[dict[str, Any]]) -> None:
        await self.feed(workers, spaces)
        now = time.monotonic()
        if now - self._board_at >= self.config.board_every_s:
            self._board_at = now
            await self.run_board()
        if now - self._reap_at >= self.config.reap_every_s:
            self._reap_at = now
            await self.reap()

    async def feed(self, workers: list[dict[str, Any]], spaces: dict[int, Space]) -> int:
        """Dispatch runnable jobs in run order to signatures some live worker can take, up to
        each signature's window; limits are checked by the dispatch script."""
        self._again = False
        if not workers:
            return 0
        # A signature's stream holds at most PREFETCH times as many undelivered messages as
        # its takers run at once: a slot that frees never waits for a round of ours, and a
        # better job that comes later waits behind at most that many.
        signatures, active = await asyncio.gather(
            self.queue.runnable_signatures(spaces), self.dispatch.active_ids()
        )
        windows = {
            sig: PREFETCH
            * sum(int(w["concurrency"]) for w in workers if eligible(sig, w["capabilities"]))
            for sig in signatures
        }
        windows = {sig: n for sig, n in windows.items() if n}  # work no live worker can take
        waiting = await self.dispatch.undelivered(sorted(windows))  # stays queued, unread
        rooms = {sig: windows[sig] - waiting[sig] for sig in windows if waiting[sig] < windows[sig]}
        if not rooms:
            return 0
        # Jobs dispatched and not yet settled (`active`) are still queued in the read model
        # until their claim is projected: skipped before any job is read.
        picks: list[Dispatchable] = []
        for sig, room in rooms.items():
            picks += await self._picks(sig, room, active, max(16, 2 * windows[sig]), spaces)
        # Limits are counted in run order across signatures.
        picks.sort(key=lambda d: run_order_key(d.priority, d.created, d.job_id))
        # One script call for the round; it checks the lead, activity and limits per job, in
        # run order, so work over a limit is skipped and waits with its place kept.
        outcomes = await self.dispatch.dispatch(picks, self.config.limits, self.token)
        self._again = self._again or any(outcome == "limit" for outcome, _ in outcomes)
        return sum(1 for outcome, _ in outcomes if outcome == "ok")

    async def _picks(
        self, sig: str, room: int, active: set[str], page: int, spaces: dict[int, Space]
    ) -> list[Dispatchable]:
        """The best `room` jobs of `sig` that may be dispatched now, reading no more of the
        index than it takes to find them."""
        now = datetime.now(UTC).isoformat()
        picks: list[Dispatchable] = []
        async for chunk in self.queue.runnable(sig, page, active, room + 8, spaces):
            # The read model lags the log: a job claimed (or finished) since shows as queued
            # at an older version. Only a job still at the version we read is dispatched.
            stored = await self.store.versions([job.id for job in chunk])
            for job in chunk:
                if job.status != "queued" or (job.not_before or "") > now:
                    continue  # waiting out a retry's backoff
                if stored[job.id] != job.version:
                    self._again = True
                    continue
                repository = str(job.normalized.get("repository") or "")
                picks.append(Dispatchable(job.id, job.version, sig, repository, job.project,
                                          job.priority, job.created_at))  # fmt: skip
                if len(picks) == room:
                    return picks
        return picks

    async def run_board(self) -> None:
        """Queue a run for each ready task without one; move dependents whose blockers are all
        resolved (and that waited only on them) to ready."""
        contract = self.settings.contract()
        for project, counts in [(p["project"], p["counts"]) for p in await self.board.projects()]:
            ready = []
            if counts[Status.READY.value]:
                ready = await self.board.column_page(project, Status.READY.value, None, 500)
            for _, task in ready:
                if task.active_job_id is None:
                    try:
                        await request_task_run(
                            self.store, task.id, contract, self.settings.flags, actor="scheduler"
                        )
                    except CairnError as e:
                        log.info("task %s not run: %s", task.id, e.message)
            if not counts[Status.BLOCKED.value]:
                continue
            blocked = [t for _, t in await self.board.column_page(project, "blocked", None, 500)]
            related = await self.board.get_tasks([b for t in blocked for b in t.blocked_by])
            for task in blocked:
                if can_become_ready(task, related):
                    try:
                        await transition_task(
                            self.store,
                            task.id,
                            "ready",
                            self.settings.flags,
                            actor="scheduler",
                            reason="blockers resolved",
                            expected_version=task.version,
                        )
                    except CairnError as e:
                        log.info("task %s not moved to ready: %s", task.id, e.message)

    async def reap(self) -> None:
        """Take back jobs whose worker stopped renewing the lease of their claim; end jobs that
        hold no dispatch at all (an orphan: the safety net); tidy finished dispatches."""
        if time.monotonic() < self._reap_after:
            return  # after an outage of ours, workers get a heartbeat to renew first
        workers = await self.registry.workers(include_stale=True)
        leases = {str(w["id"]): int(float(w.get("lease_s", 0)) * 1000) for w in workers}
        default = self.config.default_lease_ms
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
        if time.monotonic() - self._swept_at > self.config.sweep_every_s:
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
                if job.id in live or not _lease_over(job, now, self.config.default_lease_ms):
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
            reclaims = int(await self.client.hincrby(self.keys.dispatch_part("poison"), job.id, 1))
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
                pending = await self.client.xpending_range(
                    self.keys.dispatch(record["sig"]),
                    GROUP,
                    min=record["msg"],
                    max=record["msg"],
                    count=1,
                )
                if not pending:
                    settled.append((job_id, message))
        await self.dispatch.settle_many(settled)


def _lease_over(job: Job, now: datetime, default_ms: int) -> bool:
    """Whether the job's claim is older than its lease (and a margin for heartbeats)."""
    if not job.claimed_at:
        return False
    claimed = datetime.fromisoformat(job.claimed_at.replace("Z", "+00:00"))
    lease_s = (job.lease_ms or default_ms) / 1000
    return (now - claimed).total_seconds() > 2 * lease_s + SWEEP_MARGIN_S


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
