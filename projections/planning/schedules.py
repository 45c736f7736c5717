"""The schedules read model: every schedule's current state, the schedules of each project, and
the active ones by their next fire time, which the scheduler reads to know what is due."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from cairn.domain.planning.schedule_events import schedule_event_from
from cairn.domain.planning.schedules import Schedule, evolve, next_fire
from cairn.projections.generations import Space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.keys import Keys

NAME = "schedules"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Schedule).decode


def documents_key(space: Space) -> str:
    """Every schedule's document, a hash by id."""
    return space.key("schedules")


def project_key(space: Space, project: str) -> str:
    """One project's schedules, a sorted set of `created_at|id` (lex order)."""
    return space.key("project", project)


def due_key(space: Space) -> str:
    """The active schedules, a sorted set scored by the next fire time (epoch seconds)."""
    return space.key("due")


class ScheduleProjection:
    name = NAME
    kind = "schedule"

    def documents(self, space: Space) -> str:
        return documents_key(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, Schedule] = loaded

        def step(state: Schedule | None, e: Envelope) -> Schedule:
            event = schedule_event_from(e.type, e.schema, e.data)
            return evolve(state, event, e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if not changed:
            return
        pipe.hset(documents_key(space), {i: _encode(s) for i, s in changed.items()})
        for schedule_id, s in changed.items():
            if schedule_id not in before:
                pipe.zadd(project_key(space, s.project), {f"{s.created_at}|{s.id}": 0})
            at = next_fire(s)
            if at is not None:
                pipe.zadd(due_key(space), {schedule_id: at.timestamp()})
            elif schedule_id in before:
                pipe.zrem(due_key(space), schedule_id)


class Schedules:
    """Queries over the schedules read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def get(self, ids: Iterable[str]) -> dict[str, Schedule]:
        return await documents_by_id(self.client, self.keys, ScheduleProjection(), ids)

    async def due(self, now: datetime) -> list[str]:
        """The active schedules whose next fire is at or before `now`, in one round trip a
        step."""
        spaces = await current_spaces(self.client, self.keys, NAME, self.keys.all_partitions())
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.zrangebyscore(due_key(space), "-inf", now.timestamp())
            replies = await pipe.execute()
        return sorted(text(m) for members in replies for m in members)

    async def listed(self, project: str | None, limit: int) -> list[Schedule]:
        """A project's schedules (or every project's), oldest first, at most `limit`."""
        partitions = [self.keys.partition_of(project)] if project else list(
            self.keys.all_partitions())  # fmt: skip
        spaces = await current_spaces(self.client, self.keys, NAME, partitions)
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                if project:
                    pipe.zrange(project_key(space, project), 0, limit - 1)
                else:
                    pipe.hkeys(documents_key(space))
            replies = await pipe.execute()
        ids = [text(m).rsplit("|", 1)[-1] for members in replies for m in members]
        found = await self.get(ids)
        ordered = sorted(found.values(), key=lambda s: (s.created_at, s.id))
        return ordered[:limit]
