"""The scheduler's schedules part: each active schedule whose next fire time has come fires
once, at the latest time its cron names by now (missed ones are not made up one by one). The
read model says what is due; the command decides on the event store, so a fire seen twice (a
lagging read model, a second scheduler) makes one job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from cairn.commands.planning.schedules import fire_schedule
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.domain.planning.schedules import due_fire
from cairn.projections.planning.schedules import Schedules
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.scheduler")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ScheduleFires:
    def __init__(self, store: EventStore, schedules: Schedules, settings: Settings,
                 clock: Clock = utc_now) -> None:  # fmt: skip
        self.store, self.schedules, self.settings, self.clock = store, schedules, settings, clock

    async def fire(self) -> None:
        """Fire every schedule that is due now."""
        now = self.clock()
        due = await self.schedules.due(now)
        if not due:
            return
        contract = self.settings.contract()
        for s in (await self.schedules.get(due)).values():
            at = due_fire(s, now)
            if at is None:
                continue
            try:
                await fire_schedule(self.store, s.id, at, contract)
            except CairnError as e:
                log.info("schedule %s not fired at %s: %s", s.id, at.isoformat(), e.message)
