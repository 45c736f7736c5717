"""A job's live output stream on a real server: order, paging, following, the cap, the TTL,
the key's hash tag, and errors as Cairn's."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from cairn.domain.errors import InfrastructureError, ValidationFailed
from cairn.streams.keys import Keys
from cairn.streams.output import TTL_S, OutputChunk, OutputStream


async def test_chunks_read_back_in_order_and_page_by_entry_id(
    client: aioredis.Redis, keys: Keys
) -> None:
    job = keys.new_id("job", "default")
    output = OutputStream(client, keys)
    await output.append(job, [OutputChunk("cloning\n", stream="cairn"), OutputChunk("hi\n", 1)])
    await output.append(job, [OutputChunk("oops\n", 1, "err"), OutputChunk("ünïcode ✓\n", 2)])
    entries = await output.read(job)
    assert [(e.text, e.step, e.stream) for e in entries] == [
        ("cloning\n", None, "cairn"), ("hi\n", 1, "out"), ("oops\n", 1, "err"),
        ("ünïcode ✓\n", 2, "out"),
    ]  # fmt: skip
    page = await output.read(job, count=2)
    rest = await output.read(job, after=page[-1].id)
    assert page + rest == entries
    assert await output.read(job, after=entries[-1].id) == []
    assert await output.read(keys.new_id("job", "default")) == []  # no output yet: nothing


async def test_the_key_sits_in_the_jobs_partition_and_expires(
    client: aioredis.Redis, keys: Keys
) -> None:
    job = keys.new_id("job", "some-project")
    key = keys.output(job)
    assert key == f"{keys.prefix}:{{p{keys.partition_of_id(job):02d}}}:out:{job}"
    await OutputStream(client, keys).append(job, [OutputChunk("x")])
    assert 0 < await client.ttl(key) <= TTL_S


async def test_the_stream_is_capped(client: aioredis.Redis, keys: Keys) -> None:
    job = keys.new_id("job", "default")
    output = OutputStream(client, keys, max_entries=100)
    for batch in range(10):
        await output.append(job, [OutputChunk(f"{batch}-{i}") for i in range(100)])
    # MAXLEN ~ trims whole nodes, so a little over the cap may stay; never all of it.
    assert 100 <= await client.xlen(keys.output(job)) < 300
    assert (await output.read(job, count=1000))[-1].text == "9-99"


async def test_follow_waits_for_the_next_entries(client: aioredis.Redis, keys: Keys) -> None:
    job = keys.new_id("job", "default")
    output = OutputStream(client, keys)
    await output.append(job, [OutputChunk("first")])
    [first] = await output.read(job)
    waiting = asyncio.create_task(output.follow(job, first.id, block_ms=5000))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await output.append(job, [OutputChunk("second", 1), OutputChunk("third", 1)])
    assert [e.text for e in await asyncio.wait_for(waiting, 5)] == ["second", "third"]
    assert await output.follow(job, (await output.read(job))[-1].id, block_ms=10) == []


@pytest.mark.parametrize("after", ["", "x", "1-", "$", "0-0; DEL k", "-1-0"])
async def test_a_malformed_entry_id_is_refused_not_sent(
    client: aioredis.Redis, keys: Keys, after: str
) -> None:
    output = OutputStream(client, keys)
    with pytest.raises(ValidationFailed) as refused:
        await output.read(keys.new_id("job", "default"), after)
    assert refused.value.errors[0]["path"] == "after"


async def test_a_store_error_is_cairns(client: aioredis.Redis, keys: Keys) -> None:
    job = keys.new_id("job", "default")
    await client.set(keys.output(job), "not a stream")
    with pytest.raises(InfrastructureError):
        await OutputStream(client, keys).append(job, [OutputChunk("x")])
    with pytest.raises(InfrastructureError):
        await OutputStream(client, keys).read(job)
