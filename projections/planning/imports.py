"""The imports read model: every PRD import's current state, the imports of each project, and
the set of imports with tasks still to release (auto_ready), which the scheduler reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from cairn.domain.planning.import_events import import_event_from
from cairn.domain.planning.imports import ImportJob, evolve
from cairn.projections.generations import Space, current_space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.keys import Keys

NAME = "imports"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ImportJob).decode


def documents_key(space: Space) -> str:
    """Every import's document, a hash by import id."""
    return space.key("imports")


def pending_key(space: Space) -> str:
    """The imports with auto_ready tasks still to release, a sorted set (score 0)."""
    return space.key("pending")


def project_key(space: Space, project: str) -> str:
    """One project's imports, a sorted set of `created_at|id` (lex order)."""
    return space.key("project", project)


class ImportProjection:
    name = NAME
    kind = "import"

    def documents(self, space: Space) -> str:
        return documents_key(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, ImportJob] = loaded

        def step(state: ImportJob | None, e: Envelope) -> ImportJob:
            return evolve(state, import_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if not changed:
            return
        pipe.hset(documents_key(space), {i: _encode(j) for i, j in changed.items()})
        for import_id, job in changed.items():
            if import_id not in before:
                pipe.zadd(project_key(space, job.project), {f"{job.created_at}|{job.id}": 0})
            if job.pending_release:
                pipe.zadd(pending_key(space), {import_id: 0})
            elif before.get(import_id) is not None and before[import_id].pending_release:
                pipe.zrem(pending_key(space), import_id)


class Imports:
    """Queries over the imports read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def get(self, ids: Iterable[str]) -> dict[str, ImportJob]:
        return await documents_by_id(self.client, self.keys, ImportProjection(), ids)

    async def pending(self) -> list[str]:
        """Every import with auto_ready tasks still to release, in one round trip a step."""
        spaces = await current_spaces(self.client, self.keys, NAME, self.keys.all_partitions())
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.zrange(pending_key(space), 0, -1)
            replies = await pipe.execute()
        return sorted(text(m) for members in replies for m in members)

    async def of_project(self, project: str, limit: int) -> list[ImportJob]:
        """A project's imports, newest first."""
        space = await current_space(self.client, self.keys, NAME, self.keys.partition_of(project))
        members = await self.client.zrevrange(project_key(space, project), 0, limit - 1)
        found = await self.get(text(m).rsplit("|", 1)[1] for m in members)
        return list(found.values())
