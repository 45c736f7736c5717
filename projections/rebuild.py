"""Rebuilding a projection from the logs into a fresh generation, then switching to it."""

from __future__ import annotations

from collections.abc import Callable

from cairn.projections.generations import Space, current_space, generation_key, load_documents
from cairn.projections.projection import Projection
from cairn.projections.writes import Writes
from cairn.streams.connection import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.groups import drop_group, ensure_group, read_group
from cairn.streams.keys import Keys


async def rebuild(
    client: Client,
    keys: Keys,
    projection: Projection,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Rebuild `projection` from the logs into a fresh generation, then switch to it and drop
    the old one. Returns the number of events applied."""
    done = 0
    total = sum([await client.xlen(keys.log(p)) for p in keys.all_partitions()])
    for partition in keys.all_partitions():
        old = await current_space(client, keys, projection.name, partition)
        new = Space(keys, projection.name, partition, old.generation + 1)
        log = keys.log(partition)
        await _drop_space(client, new)
        await ensure_group(client, log, new.group)
        while True:
            events = await read_group(client, log, new.group, "rebuild", count=2000, block_ms=None)
            if not events:  # XREADGROUP without BLOCK answers at once when nothing is new
                break
            await apply_batch(client, projection, new, events)
            done += len(events)
            progress(done, max(total, done))
        await client.set(generation_key(keys, projection.name, partition), new.generation)
        await _drop_space(client, old)
    return done


async def _drop_space(client: Client, space: Space) -> None:
    await drop_group(client, space.keys.log(space.partition), space.group)
    index = space.written_keys
    written = [text(k) for k in await client.smembers(index)]
    for start in range(0, len(written), 1000):
        await client.unlink(*written[start : start + 1000])
    await client.unlink(index)


async def apply_batch(
    client: Client, projection: Projection, space: Space, events: list[Envelope]
) -> None:
    """Apply and acknowledge one batch with no fence (a rebuild's own generation, which no
    one else writes): a plain MULTI, cheaper than the script for the rebuild's big batches."""
    writes = Writes()
    [loaded] = await load_documents(client, projection, [(space, events)])
    projection.apply(writes, space, events, loaded)
    writes.set(space.position_key, events[-1].position)
    writes.register(space)
    async with client.pipeline(transaction=True) as pipe:
        for command in writes.commands:
            pipe.execute_command(*command)
        pipe.xack(space.keys.log(space.partition), space.group, *[e.position for e in events])
        await pipe.execute()
