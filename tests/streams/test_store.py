"""The append primitive on a real server: versions, guards, idempotency, NOSCRIPT."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from cairn.domain.errors import VersionConflict
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore, Guard, Meta, NewEvent, StreamWrite


def ev(n: int) -> NewEvent:
    return NewEvent("thing.happened", {"n": n})


async def test_append_writes_aggregate_and_log_in_order(store: EventStore, keys: Keys) -> None:
    a = keys.new_id("thing", "default")
    p = keys.partition_of_id(a)
    first = await store.append(p, [StreamWrite(a, 0, [ev(1), ev(2)])], meta=Meta(actor="ann"))
    assert first.versions == [2]
    second = await store.append(p, [StreamWrite(a, 2, [ev(3)])])
    assert second.versions == [3]
    events = await store.read_aggregate(a)
    assert [(e.ver, e.data["n"], e.agg) for e in events] == [(1, 1, a), (2, 2, a), (3, 3, a)]
    assert events[0].actor == "ann"
    log = await store.read_log(p)
    assert [e.data["n"] for e in log] == [1, 2, 3]
    assert log[-1].position == second.position


async def test_expected_version_mismatch_writes_nothing(store: EventStore, keys: Keys) -> None:
    a, b = keys.new_id("thing", "x"), keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    await store.append(p, [StreamWrite(a, 0, [ev(1)])])
    with pytest.raises(VersionConflict) as caught:
        await store.append(p, [StreamWrite(b, 0, [ev(2)]), StreamWrite(a, 0, [ev(3)])])
    assert caught.value.details["actual_version"] == 1
    assert await store.read_aggregate(b) == []
    assert len(await store.read_log(p)) == 1


async def test_guard_stream_must_be_unchanged(store: EventStore, keys: Keys) -> None:
    a, g = keys.new_id("thing", "x"), keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    await store.append(p, [StreamWrite(g, 0, [ev(1)])])
    with pytest.raises(VersionConflict):
        await store.append(p, [StreamWrite(a, 0, [ev(2)])], guards=[Guard(g, 0)])
    ok = await store.append(p, [StreamWrite(a, 0, [ev(2)])], guards=[Guard(g, 1)])
    assert ok.versions == [1]


async def test_retried_command_returns_first_result_and_appends_nothing(
    store: EventStore, keys: Keys
) -> None:
    a = keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    first = await store.append(p, [StreamWrite(a, 0, [ev(1)])], command_id="c1")
    again = await store.append(p, [StreamWrite(a, 0, [ev(1)])], command_id="c1")
    assert again.duplicate and (again.position, again.versions) == (first.position, first.versions)
    assert len(await store.read_aggregate(a)) == 1


async def test_script_cache_flush_is_survived(
    store: EventStore, keys: Keys, client: aioredis.Redis
) -> None:
    a = keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    await store.append(p, [StreamWrite(a, 0, [ev(1)])])
    await client.script_flush()
    result = await store.append(p, [StreamWrite(a, 1, [ev(2)])])
    assert result.versions == [2]


async def test_concurrent_appends_at_one_version_exactly_one_wins(
    store: EventStore, keys: Keys
) -> None:
    a = keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    await store.append(p, [StreamWrite(a, 0, [ev(0)])])
    outcomes = await asyncio.gather(
        *(store.append(p, [StreamWrite(a, 1, [ev(i)])]) for i in range(16)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, VersionConflict) for o in outcomes if isinstance(o, Exception))


async def test_log_entries_are_readable_without_our_code(
    store: EventStore, keys: Keys, client: aioredis.Redis
) -> None:
    a = keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    await store.append(p, [StreamWrite(a, 0, [ev(7)])], meta=Meta(actor="auditor"))
    entries: Any = await client.xrange(keys.log(p))
    [(_, fields)] = entries
    assert set(fields) >= {b"id", b"type", b"agg", b"ver", b"ts", b"actor", b"data", b"schema"}
    assert fields[b"type"] == b"thing.happened" and fields[b"data"] == b'{"n":7}'
    assert fields[b"ver"] == b"1" and fields[b"agg"] == a.encode()


async def test_appends_asked_for_together_share_one_round_trip_and_keep_their_own_answers(
    keys: Keys, client: aioredis.Redis, server: EmbeddedServer
) -> None:
    """Group commit: one connection carries the turn's appends, each still atomic on its own,
    a conflict refusing only its own append."""
    own = connect(server.url)
    store = EventStore(own, keys)
    a, b = keys.new_id("thing", "x"), keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    await store.append(p, [StreamWrite(a, 0, [ev(0)])])
    before = len(await client.client_list())
    outcomes = await asyncio.gather(
        store.append(p, [StreamWrite(a, 0, [ev(1)])]),  # a is at 1: refused
        *(store.append(p, [StreamWrite(keys.new_id("thing", "x"), 0, [ev(i)])]) for i in range(15)),
        store.append(p, [StreamWrite(b, 0, [ev(2)])]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], VersionConflict)
    assert all(not isinstance(o, BaseException) and o.versions == [1] for o in outcomes[1:])
    assert len(await client.client_list()) - before <= 1  # not one connection per append
    assert [e.data["n"] for e in await store.read_aggregate(a)] == [0]
    await own.aclose()


async def test_script_cache_flush_is_survived_by_appends_sent_together(
    store: EventStore, keys: Keys, client: aioredis.Redis
) -> None:
    ids = [keys.new_id("thing", "x") for _ in range(5)]
    p = keys.partition_of_id(ids[0])
    await client.script_flush()
    results = await asyncio.gather(*(store.append(p, [StreamWrite(i, 0, [ev(1)])]) for i in ids))
    assert [r.versions for r in results] == [[1]] * 5


async def test_an_append_whose_caller_gave_up_before_it_was_sent_is_not_written(
    store: EventStore, keys: Keys
) -> None:
    a = keys.new_id("thing", "x")
    p = keys.partition_of_id(a)
    doomed = asyncio.ensure_future(store.append(p, [StreamWrite(a, 0, [ev(1)])]))
    await asyncio.sleep(0)  # queued, not yet sent
    doomed.cancel()
    kept = await store.append(p, [StreamWrite(a, 0, [ev(2)])])
    assert kept.versions == [1]
    assert [e.data["n"] for e in await store.read_aggregate(a)] == [2]
