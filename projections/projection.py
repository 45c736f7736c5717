"""What a projection is: a fold of one aggregate kind's events into documents and the keys
that index them, recorded as writes; the fold of a batch that every projection shares; and the
reads of its documents by id that every query shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from cairn.projections.generations import Space, current_spaces
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys


class Projection(Protocol):
    name: str
    kind: str  # the aggregate kind whose events it folds (`task.*`); others it passes over

    def documents(self, space: Space) -> str:
        """The hash holding the document of each aggregate of `kind`, what a batch loads
        (before the write, outside the script) for the aggregates it touches."""

    def decode(self, raw: bytes) -> Any:
        """One document as stored in `documents`."""

    def apply(
        self, writes: Writes, space: Space, events: list[Envelope], loaded: dict[str, Any]
    ) -> None:
        """Record the writes for `events` onto the `loaded` documents; pure apart from
        recording."""


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)


def fold_batch(
    before: dict[str, V], events: list[Envelope], kind: str,
    step: Callable[[V | None, Envelope], V],
) -> dict[str, V]:  # fmt: skip
    """The documents `events` of `kind` change, folded onto `before` with `step`; an event at
    or below a document's version was applied already and is skipped."""
    after = dict(before)
    for e in events:
        if not e.type.startswith(f"{kind}."):
            continue
        state = after.get(e.agg)
        if state is not None and e.ver <= state.version:
            continue
        after[e.agg] = step(state, e)
    return {i: doc for i, doc in after.items() if before.get(i) is not doc}


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
