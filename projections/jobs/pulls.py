"""The pull requests read model: every PR Cairn opened, as its facts leave it (for the PR watcher,
which looks at the open ones, and for the pages and the API, by the job that opened or pushed to
it)."""

from __future__ import annotations

from typing import Any

import msgspec

from cairn.commands.jobs.pulls import pull_id
from cairn.domain.jobs.pulls import PullRequest, evolve, pull_event_from
from cairn.projections.generations import Space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys

NAME = "pulls"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(PullRequest).decode


def documents_key(space: Space) -> str:
    return space.key("pulls")


class PullProjection:
    name = NAME
    kind = "pr"

    def documents(self, space: Space) -> str:
        return documents_key(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, PullRequest] = loaded

        def step(state: PullRequest | None, e: Envelope) -> PullRequest:
            return evolve(state, pull_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if changed:
            pipe.hset(documents_key(space), {i: _encode(p) for i, p in changed.items()})


class Pulls:
    """Queries over the pull requests read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def get(self, project: str, url: str) -> PullRequest | None:
        return (await self.get_many(project, [url])).get(url)

    async def get_many(self, project: str, urls: list[str]) -> dict[str, PullRequest]:
        """The PRs among `urls` (of `project`) Cairn follows, by URL."""
        ids = {pull_id(self.keys, project, url): url for url in urls}
        found: dict[str, PullRequest] = await documents_by_id(
            self.client, self.keys, PullProjection(), list(ids)
        )
        return {ids[i]: pr for i, pr in found.items()}

    async def all(self) -> list[PullRequest]:
        """Every PR Cairn opened (a round trip for the generations, one for the documents)."""
        spaces = await current_spaces(self.client, self.keys, NAME, self.keys.all_partitions())
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.hvals(documents_key(space))
            replies = await pipe.execute()
        return [_decode(d) for docs in replies for d in docs]

    async def open(self) -> list[PullRequest]:
        return [p for p in await self.all() if p.state == "open"]
