"""Where read models live: each projection keeps a numbered generation of its keys per
partition (a rebuild fills the next one, then switches), and the reads every query shares:
the current generations, documents by id, and each partition's last applied position."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairn.streams.connection import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.keys import Keys

if TYPE_CHECKING:
    from cairn.projections.projection import Projection


@dataclass(frozen=True, slots=True)
class Space:
    """Where one projection generation of one partition lives."""

    keys: Keys
    projection: str
    partition: int
    generation: int

    def key(self, *parts: str) -> str:
        return self.keys.read_model(self.partition, self.projection, f"g{self.generation}", *parts)

    @property
    def group(self) -> str:
        return f"{self.projection}:g{self.generation}"

    @property
    def position_key(self) -> str:
        """The log position the space has applied up to."""
        return self.key("pos")

    @property
    def written_keys(self) -> str:
        """The set of every key the space wrote: dropping it unlinks exactly these."""
        return self.key("keys")


def generation_key(keys: Keys, projection: str, partition: int) -> str:
    return keys.read_model(partition, projection, "gen")


async def documents_by_id(
    client: Client, keys: Keys, projection: Projection, ids: Iterable[str]
) -> dict[str, Any]:
    """The documents of `ids` in `projection`'s current read model (unknown ids left out):
    the generations in one round trip, then one pipeline of an HMGET per partition."""
    by_partition: dict[int, list[str]] = {}
    for i in dict.fromkeys(ids):
        if keys.is_aggregate_id(i):
            by_partition.setdefault(keys.partition_of_id(i), []).append(i)
    if not by_partition:
        return {}
    spaces = await current_spaces(client, keys, projection.name, list(by_partition))
    async with client.pipeline(transaction=False) as pipe:
        for p, wanted in by_partition.items():
            pipe.hmget(projection.documents(spaces[p]), wanted)
        replies = await pipe.execute()
    return {
        i: projection.decode(doc)
        for wanted, docs in zip(by_partition.values(), replies, strict=True)
        for i, doc in zip(wanted, docs, strict=True)
        if doc
    }


async def load_documents(
    client: Client, projection: Projection, batches: Sequence[tuple[Space, list[Envelope]]]
) -> list[dict[str, Any]]:
    """The documents of the aggregates each batch touches, for all batches in one round trip."""
    prefix = f"{projection.kind}."
    wanted = [
        list(dict.fromkeys(e.agg for e in events if e.type.startswith(prefix)))
        for _, events in batches
    ]
    if not any(wanted):
        return [{} for _ in batches]
    async with client.pipeline(transaction=False) as pipe:
        for (space, _), ids in zip(batches, wanted, strict=True):
            if ids:
                pipe.hmget(projection.documents(space), ids)
        replies = iter(await pipe.execute())
    loaded: list[dict[str, Any]] = []
    for ids in wanted:
        docs = next(replies) if ids else []
        loaded.append(
            {i: projection.decode(d) for i, d in zip(ids, docs, strict=True) if d is not None}
        )
    return loaded


async def current_space(
    client: Client, keys: Keys, projection: str, partition: int
) -> Space:
    return (await current_spaces(client, keys, projection, [partition]))[partition]


async def current_spaces(
    client: Client, keys: Keys, projection: str, partitions: Sequence[int]
) -> dict[int, Space]:
    """The current space of each of `partitions`, in one round trip."""
    if not partitions:
        return {}
    raws = await client.mget([generation_key(keys, projection, p) for p in partitions])
    return {
        p: Space(keys, projection, p, int(raw or 1))
        for p, raw in zip(partitions, raws, strict=True)
    }


async def positions(
    client: Client, keys: Keys, projection: str, spaces: dict[int, Space] | None = None
) -> dict[int, str]:
    """Each partition's last applied log position for `projection` (in `spaces`, its current
    ones if not given)."""
    spaces = spaces or await current_spaces(client, keys, projection, keys.all_partitions())
    raws = await client.mget([space.position_key for space in spaces.values()])
    return {p: text(raw) if raw else "0-0" for p, raw in zip(spaces, raws, strict=True)}
