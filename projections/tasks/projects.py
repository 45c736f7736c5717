"""The projects read model: every project that has settings, in its own partition. The projects
a reader sees are these plus the names the board knows only from their tasks."""

from __future__ import annotations

from typing import Any

import msgspec

from cairn.commands.tasks.projects import project_id
from cairn.domain.tasks.project import Project, evolve, project_event_from
from cairn.projections.generations import Space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys

NAME = "projects"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Project).decode


def documents_key(space: Space) -> str:
    """Every project's document (its settings), a hash by project id."""
    return space.key("projects")


class ProjectProjection:
    name = NAME
    kind = "project"

    def documents(self, space: Space) -> str:
        return documents_key(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, Project] = loaded

        def step(state: Project | None, e: Envelope) -> Project:
            return evolve(state, project_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if changed:
            pipe.hset(documents_key(space), {i: _encode(p) for i, p in changed.items()})


class Projects:
    """Queries over the projects read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def get_many(self, names: list[str]) -> dict[str, Project]:
        """The projects among `names` that have settings, by name."""
        ids = {project_id(self.keys, n): n for n in names}
        found: dict[str, Project] = await documents_by_id(
            self.client, self.keys, ProjectProjection(), list(ids)
        )
        return {ids[i]: p for i, p in found.items()}

    async def get(self, name: str) -> Project | None:
        return (await self.get_many([name])).get(name)

    async def all(self) -> list[Project]:
        """Every project with settings, by name (a round trip for the generations, one for
        the documents)."""
        spaces = await current_spaces(self.client, self.keys, NAME, self.keys.all_partitions())
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.hvals(documents_key(space))
            replies = await pipe.execute()
        return sorted((_decode(d) for docs in replies for d in docs), key=lambda p: p.name)
