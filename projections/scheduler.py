"""The scheduler, a process manager: each round it feeds the dispatch streams (dispatcher),
runs ready board tasks and moves dependents on (board runs), fires due schedules (schedule
fires), and takes back expired leases (reaper). Several schedulers may run; one leads (a
lease), the others wait to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.projections.generations import Space, positions
from cairn.projections.jobs.dispatcher import Dispatcher
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.projections.jobs.queue import Queue
from cairn.projections.jobs.reaper import Reaper
from cairn.projections.orchestrator.catalog import Runs
from cairn.projections.orchestrator.expiry import ApprovalExpiry
from cairn.projections.planning.import_releases import ImportReleases
from cairn.projections.planning.imports import Imports
from cairn.projections.planning.schedule_fires import ScheduleFires
from cairn.projections.planning.schedules import Schedules
from cairn.projections.tasks.board import Board
from cairn.projections.tasks.board_runs import BoardRuns
from cairn.streams.dispatch import Dispatch, Limits
from cairn.streams.driver import Client
from cairn.streams.envelope import position_key, text
from cairn.streams.keys import Keys
from cairn.streams.leases import Leases
from cairn.streams.lifetime import wait_for_stop
from cairn.streams.registry import Registry
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.scheduler")
OUTAGE_S, OUTAGE_GRACE_S = 2.0, 12.0  # a heartbeat is at most 5 s: two of them and a margin


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    limits: Limits = field(default_factory=Limits)
    tick_s: float = 0.05
    leader_lease_ms: int = 5_000
    default_lease_ms: int = 120_000
    board_every_s: float = 0.25
    reap_every_s: float = 0.5
    idle_s: float = 0.25


class Scheduler:
    def __init__(self, client: Client, settings: Settings, config: SchedulerConfig) -> None:
        self.client, self.settings, self.config = client, settings, config
        self.keys = Keys(settings.prefix, settings.partitions)
        self.store = EventStore(client, self.keys, settings.command_ttl_s)
        self.dispatch = Dispatch(client, self.keys)
        self.registry = Registry(client, self.keys)
        self.leases = Leases(client)
        self.queue, self.board = Queue(client, self.keys), Board(client, self.keys)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.dispatcher = Dispatcher(self.store, self.queue, self.dispatch, config.limits,
                                     self.token)  # fmt: skip
        self.board_runs = BoardRuns(self.store, self.board, settings)
        self.import_releases = ImportReleases(self.store, Imports(client, self.keys), self.board,
                                              settings)  # fmt: skip
        self.schedule_fires = ScheduleFires(self.store, Schedules(client, self.keys), settings)
        self.reaper = Reaper(self.store, self.dispatch, self.registry, self.queue, settings,
                             config.default_lease_ms)  # fmt: skip
        self.approvals = ApprovalExpiry(self.store, Runs(client, self.keys))
        self._board_at = self._reap_at = 0.0
        self._reached_at = time.monotonic()
        self._log_ends: dict[Any, Any] | None = None

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
            await wait_for_stop(stop, self.config.tick_s)
            if caught_up and not self.dispatcher.again:
                await self._until_something_happens(stop)
        with contextlib.suppress(CairnError):
            await self.leases.release(self.dispatch.leader_key, self.token)

    def _reached(self, now: float) -> None:
        """A round reached the store; after a gap (an outage, a stall) the reaper waits a few
        heartbeats, so that workers that could not renew meanwhile renew first."""
        if now - self._reached_at > OUTAGE_S:
            self.reaper.not_before = now + OUTAGE_GRACE_S
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
        """Take the leader lease if free, or renew it if ours."""
        return await self.leases.hold(
            self.dispatch.leader_key, self.token, self.config.leader_lease_ms
        )

    async def tick(self, spaces: dict[int, Space], workers: list[dict[str, Any]]) -> None:
        await self.dispatcher.feed(workers, spaces)
        now = time.monotonic()
        if now - self._board_at >= self.config.board_every_s:
            self._board_at = now
            await self.import_releases.release()
            await self.schedule_fires.fire()
            await self.board_runs.run_board()
        if now - self._reap_at >= self.config.reap_every_s:
            self._reap_at = now
            await self.reaper.reap()
            await self.approvals.expire()
