"""Rebuilding a projection from the logs into a fresh generation, then switching to it; the
events moved to the archive are applied in their places among the log's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cairn.projections.generations import Space, current_space, generation_key
from cairn.projections.projection import Projection, load_documents
from cairn.projections.writes import Writes
from cairn.streams.archive import Archive, ArchivedEvent, default_archive
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, position_key, text
from cairn.streams.export import count_events
from cairn.streams.groups import drop_group, ensure_group, read_group
from cairn.streams.keys import Keys
from cairn.streams.store import merge_positions

BATCH = 2_000


async def rebuild(
    client: Client,
    keys: Keys,
    projection: Projection,
    progress: Callable[[int, int], None] = lambda done, total: None,
    archive: Archive | None = None,
) -> int:
    """Rebuild `projection` from the logs (and `archive`, else the install's archive under the
    process's archive root) into a fresh generation, then switch to it and drop the old one.
    Returns the number of events applied."""
    archive = archive if archive is not None else default_archive(keys.prefix)
    done = 0
    total = await count_events(client, keys) + (archive.count()[1] if archive is not None else 0)
    for partition in keys.all_partitions():
        old = await current_space(client, keys, projection.name, partition)
        new = Space(keys, projection.name, partition, old.generation + 1)
        log = keys.log(partition)
        await _drop_space(client, new)
        # The group first: an archive move after this waits for it (streams/archive.lua), and
        # one before it is in the archive's index read next.
        await ensure_group(client, log, new.group)
        archived = _Archived(archive.iter_partition(partition) if archive is not None else None)
        while True:
            events = await read_group(client, log, new.group, "rebuild", count=BATCH,
                                      block_ms=None)  # fmt: skip
            # XREADGROUP without BLOCK answers at once when nothing is new; then the archived
            # events past the log's last (a partition whose latest aggregates were archived).
            upto = events[-1].position if events else None
            merged = merge_positions(events, archived.take(upto))
            if not merged:
                break
            for start in range(0, len(merged), BATCH):
                chunk = merged[start : start + BATCH]
                # The log's entries are acknowledged with the last chunk, which holds the last
                # of them (archived events are taken only up to it), once all are applied.
                last = start + BATCH >= len(merged)
                await apply_batch(client, projection, new, chunk, acked=events if last else [])
                done += len(chunk)
                progress(done, max(total, done))
        await client.set(generation_key(keys, projection.name, partition), new.generation)
        await _drop_space(client, old)
    return done


class _Archived:
    """A partition's archived events in log order, taken up to a position at a time (the index
    is queried now, not at the first take)."""

    def __init__(self, events: Iterator[ArchivedEvent] | None) -> None:
        self.events = events
        self.next = next(events, None) if events is not None else None

    def take(self, upto: str | None) -> list[Envelope]:
        """Every event up to position `upto` (None: the rest, a batch's worth)."""
        limit = position_key(upto) if upto is not None else None
        taken: list[Envelope] = []
        while self.next is not None and (limit is None or self.next.key <= limit):
            taken.append(self.next.envelope())
            self.next = next(self.events, None) if self.events is not None else None
            if limit is None and len(taken) >= BATCH:
                break
        return taken


async def _drop_space(client: Client, space: Space) -> None:
    await drop_group(client, space.keys.log(space.partition), space.group)
    index = space.written_keys
    written = [text(k) for k in await client.smembers(index)]
    for start in range(0, len(written), 1000):
        await client.unlink(*written[start : start + 1000])
    await client.unlink(index)


async def apply_batch(
    client: Client, projection: Projection, space: Space, events: list[Envelope],
    acked: list[Envelope] | None = None,
) -> None:  # fmt: skip
    """Apply one batch and acknowledge its log entries (of `acked`, else all) with no fence (a
    rebuild's own generation, which no one else writes): a plain MULTI, cheaper than the script
    for the rebuild's big batches."""
    writes = Writes()
    [loaded] = await load_documents(client, projection, [(space, events)])
    projection.apply(writes, space, events, loaded)
    writes.set(space.position_key, events[-1].position)
    writes.register(space)
    async with client.pipeline(transaction=True) as pipe:
        for command in writes.commands:
            pipe.execute_command(*command)
        if ids := [e.position for e in (events if acked is None else acked)]:
            pipe.xack(space.keys.log(space.partition), space.group, *ids)
        await pipe.execute()
