"""Test helpers: the board as a fold of the log, and the board as the read model holds it; any
kind of aggregate folded from the log, and a read model's documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis

from cairn.domain.tasks.events import task_event_from
from cairn.domain.tasks.task import Task, evolve
from cairn.projections import layout
from cairn.projections.generations import current_space
from cairn.projections.tasks.board import NAME, card_member
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore


async def fold_log(client: aioredis.Redis, keys: Keys) -> dict[str, Any]:
    store = EventStore(client, keys)
    tasks: dict[str, Task] = {}
    for p in keys.all_partitions():
        after = "0-0"
        while batch := await store.read_log(p, after, count=5000):
            after = batch[-1].position
            for e in batch:
                if e.type.startswith("task."):
                    event = task_event_from(e.type, e.schema, e.data)
                    tasks[e.agg] = evolve(tasks.get(e.agg), event, e.agg, e.ver, e.ts)
    return {i: msgspec.to_builtins(t) for i, t in tasks.items()}


async def read_board(client: aioredis.Redis, keys: Keys) -> dict[str, Any]:
    """The read model's tasks; also checks columns and counts agree with them."""
    docs: dict[str, Any] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, NAME, p)
        raw = await client.hgetall(layout.tasks(space))
        part = {text(k): msgspec.json.decode(v, type=Task) for k, v in raw.items()}
        for project in {t.project for t in part.values()}:
            for status in ("backlog", "ready", "in_progress", "in_review", "done", "blocked",
                           "cancelled"):  # fmt: skip
                column = layout.column(space, project, status)
                members = {text(m) for m in await client.zrange(column, 0, -1)}
                expected = {card_member(t) for t in part.values()
                            if t.project == project and t.status == status}  # fmt: skip
                assert members == expected, (project, status)
                count = await client.hget(layout.counts(space, project), status)
                assert int(count or 0) == len(expected)
        docs.update({i: msgspec.to_builtins(t) for i, t in part.items()})
    return docs


async def log_ends(client: aioredis.Redis, keys: Keys) -> dict[int, str]:
    ends = {}
    for p in keys.all_partitions():
        last = await client.xrevrange(keys.log(p), count=1)
        ends[p] = text(last[0][0]) if last else "0-0"
    return ends


async def fold_kind(
    store: EventStore, prefix: str, event_from: Callable[[str, int, Any], Any],
    evolve_state: Callable[[Any, Any, str, int, str], Any],
) -> dict[str, Any]:
    """Each aggregate of one kind (its events' type prefix, e.g. "proposal.") folded from the
    whole log."""
    found: dict[str, Any] = {}
    for p in store.keys.all_partitions():
        for e in await store.read_log(p, count=100_000):
            if e.type.startswith(prefix):
                event = event_from(e.type, e.schema, e.data)
                found[e.agg] = evolve_state(found.get(e.agg), event, e.agg, e.ver, e.ts)
    return found


async def read_documents(
    client: aioredis.Redis, keys: Keys, name: str, documents_key: Callable[[Any], str],
    kind: type[Any],
) -> dict[str, object]:
    """A read model's documents (the hash `documents_key` of each partition's current space)."""
    docs: dict[str, object] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, name, p)
        for k, v in (await client.hgetall(documents_key(space))).items():
            docs[text(k)] = msgspec.to_builtins(msgspec.json.decode(v, type=kind))
    return docs
