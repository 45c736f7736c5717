"""Live sessions' terminals in the store: frames in order with their counts, the cap, a
blocking read, the hash tag, and tickets that work once."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from cairn.streams.keys import Keys
from cairn.streams.live import OUT_MAX, LiveChannels


async def test_frames_read_back_in_order_and_new_ones_wake_a_reader(
    client: aioredis.Redis, keys: Keys
) -> None:
    job = keys.new_id("job", "default")
    live = LiveChannels(client, keys)
    assert live.key(job, "s1", "out").startswith(keys.tag(keys.partition_of_id(job)))
    await live.put(job, "s1", "out", [("o", "hello \x1b[1mworld\x1b[0m\r\n", 1), ("r", "80x24", 0)])
    frames = await live.read(job, "s1", "out", "0-0", None)
    assert [(f.kind, f.data, f.n) for f in frames] == [
        ("o", "hello \x1b[1mworld\x1b[0m\r\n", 1), ("r", "80x24", 0)]
    start = await live.last_id(job, "s1", "out")
    waiting = asyncio.create_task(live.read(job, "s1", "out", start, 2000))
    await asyncio.sleep(0.1)
    await live.put(job, "s1", "out", [("o", "more", 2)])
    assert [f.data for f in await waiting] == ["more"]
    assert await live.read(job, "s1", "in", "0-0", 50) == []


async def test_the_out_side_is_capped_and_a_reader_can_count_what_it_lost(
    client: aioredis.Redis, keys: Keys
) -> None:
    job = keys.new_id("job", "default")
    live = LiveChannels(client, keys)
    for first in range(1, 3 * OUT_MAX, 500):
        await live.put(job, "s1", "out", [("o", "x", n) for n in range(first, first + 500)])
    assert await client.xlen(live.key(job, "s1", "out")) < 2 * OUT_MAX
    oldest = (await live.read(job, "s1", "out", "0-0", None, count=1))[0]
    assert oldest.n > 1  # what a reader from the start lost: oldest.n - 1 frames
    await live.drop(job, "s1")
    assert await client.exists(live.key(job, "s1", "out")) == 0


async def test_a_ticket_works_once_and_not_after_its_time(
    client: aioredis.Redis, keys: Keys
) -> None:
    live = LiveChannels(client, keys)
    await live.issue("t-0123456789", '{"session": "s1"}', ttl_s=30)
    assert await live.redeem("t-0123456789") == '{"session": "s1"}'
    assert await live.redeem("t-0123456789") is None
    await live.issue("t-short", "x", ttl_s=1)
    await asyncio.sleep(1.2)
    assert await live.redeem("t-short") is None
    assert not [k async for k in client.scan_iter(f"{keys.prefix}:live-ticket:*")]
