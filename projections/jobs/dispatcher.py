"""Dispatching: runnable jobs go to the dispatch stream of their capability signature just in
time, in run order, within the limits, and only for signatures some live worker can take.

The dispatch script refuses a caller that does not lead and a job that is still active, so no
job is dispatched twice (decision 0002).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cairn.domain.jobs.dispatch import eligible, run_order_key
from cairn.projections.generations import Space
from cairn.projections.jobs.queue import Queue
from cairn.projections.tasks.projects import Projects
from cairn.streams.dispatch import Dispatch, Dispatchable, Limits
from cairn.streams.store import EventStore

# Undelivered messages a signature's stream may hold, per job its takers run at once. One
# round refills up to this many times its takers' slots, so under load rounds (each a few
# round trips on a busy server) keep up; order bends by at most that many jobs.
PREFETCH = 2


class Dispatcher:
    def __init__(
        self, store: EventStore, queue: Queue, dispatch: Dispatch, limits: Limits, token: str
    ) -> None:
        self.store, self.queue, self.dispatch = store, queue, dispatch
        self.limits, self.token = limits, token
        self.projects = Projects(store.redis, store.keys)
        # The last round left work that may go soon without a new event: it skipped jobs the
        # read model showed out of date, or a limit held some (a settle frees it, silently).
        self.again = False

    async def feed(self, workers: list[dict[str, Any]], spaces: dict[int, Space]) -> int:
        """Dispatch runnable jobs in run order to signatures some live worker can take, up to
        each signature's window; limits are checked by the dispatch script."""
        self.again = False
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
        # Limits are counted in run order across signatures; a project may set its own.
        picks.sort(key=lambda d: run_order_key(d.priority, d.created, d.job_id))
        limits = await self.projects.get_many(sorted({d.project for d in picks}))
        picks = [replace(d, project_limit=limits[d.project].settings.concurrency or 0)
                 if d.project in limits else d for d in picks]  # fmt: skip
        # One script call for the round; it checks the lead, activity and limits per job, in
        # run order, so work over a limit is skipped and waits with its place kept.
        outcomes = await self.dispatch.dispatch(picks, self.limits, self.token)
        self.again = self.again or any(outcome == "limit" for outcome, _ in outcomes)
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
                    self.again = True
                    continue
                repository = str(job.normalized.get("repository") or "")
                picks.append(Dispatchable(job.id, job.version, sig, repository, job.project,
                                          job.priority, job.created_at))  # fmt: skip
                if len(picks) == room:
                    return picks
        return picks
