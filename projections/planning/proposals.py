"""The proposals read model: every proposal's current state and, per status, an index in
review order (urgent first, then oldest), which the triage list reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from cairn.domain.planning.proposal_events import proposal_event_from
from cairn.domain.planning.proposals import RANK, Proposal, evolve
from cairn.projections.generations import Space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.keys import Keys

NAME = "proposals"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Proposal).decode


def documents_key(space: Space) -> str:
    """Every proposal's document, a hash by id."""
    return space.key("proposals")


def status_key(space: Space, status: str) -> str:
    """The proposals in one status, a sorted set of `rank|created_at|id` (lex order)."""
    return space.key("status", status)


def member(p: Proposal) -> str:
    return f"{RANK.get(p.review_priority, 9)}|{p.created_at}|{p.id}"


class ProposalProjection:
    name = NAME
    kind = "proposal"

    def documents(self, space: Space) -> str:
        return documents_key(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, Proposal] = loaded

        def step(state: Proposal | None, e: Envelope) -> Proposal:
            event = proposal_event_from(e.type, e.schema, e.data)
            return evolve(state, event, e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if not changed:
            return
        pipe.hset(documents_key(space), {i: _encode(p) for i, p in changed.items()})
        for proposal_id, new in changed.items():
            old = before.get(proposal_id)
            if old is not None and (old.status, member(old)) != (new.status, member(new)):
                pipe.zrem(status_key(space, old.status), member(old))
            pipe.zadd(status_key(space, new.status), {member(new): 0})


class Proposals:
    """Queries over the proposals read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def get(self, ids: Iterable[str]) -> dict[str, Proposal]:
        return await documents_by_id(self.client, self.keys, ProposalProjection(), ids)

    async def list(self, status: str, *, project: str | None, priority: str | None,
                   repository: str | None, limit: int) -> list[Proposal]:  # fmt: skip
        """Proposals of one status in review order, filtered; at most `limit`."""
        partitions = [self.keys.partition_of(project)] if project else list(
            self.keys.all_partitions())  # fmt: skip
        spaces = await current_spaces(self.client, self.keys, NAME, partitions)
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.zrange(status_key(space, status), 0, -1)
            replies = await pipe.execute()
        members = sorted(text(m) for names in replies for m in names)
        found: list[Proposal] = []
        for start in range(0, len(members), 200):
            page = members[start : start + 200]
            docs = await self.get(m.rsplit("|", 1)[1] for m in page)
            for m in page:
                p = docs.get(m.rsplit("|", 1)[1])
                if p is None or (project and p.project != project):
                    continue
                if (priority and p.review_priority != priority) or (
                    repository and p.repository != repository
                ):
                    continue
                found.append(p)
                if len(found) == limit:
                    return found
        return found
