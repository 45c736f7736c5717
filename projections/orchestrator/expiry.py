"""A process manager: a run awaiting approval past its time (CAIRN_APPROVAL_TIMEOUT) is
rejected as expired, by `cairn` (the scheduler's leader does it, in its reaper's rounds)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from cairn.commands.orchestrator.runs import EXPIRY_ACTOR, reject_run
from cairn.domain.errors import CairnError
from cairn.domain.orchestrator.runs import expired
from cairn.projections.orchestrator.catalog import Runs
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.scheduler")


class ApprovalExpiry:
    def __init__(self, store: EventStore, runs: Runs) -> None:
        self.store, self.runs = store, runs

    async def expire(self) -> int:
        now = datetime.now(UTC)
        done = 0
        for run in await self.runs.awaiting():
            if not expired(run, now):
                continue
            try:
                await reject_run(self.store, run.id, "", actor=EXPIRY_ACTOR, expired=True)
                done += 1
            except CairnError as e:  # decided meanwhile, or the store is away: the next round
                log.info("run %s: the approval's expiry waits (%s)", run.id, e.message)
        return done
