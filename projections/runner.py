"""Running projections: one consumer group per projection and generation on every partition
log, one active consumer per partition (a fenced lease), apply + XACK in one atomic script."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from cairn.domain.errors import InfrastructureError
from cairn.streams.connection import run_script_calls
from cairn.streams.envelope import Envelope, decode_entry, text
from cairn.streams.groups import ensure_group, read_group
from cairn.streams.keys import Keys

log = logging.getLogger("cairn.projector")
APPLY_LUA = resources.files("cairn.projections").joinpath("apply.lua").read_text()
# Take the lease if free, or renew it if ours: 1 when we hold it afterwards.
HOLD_LUA = (
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return 1 end return 0"
)
RELEASE_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
LINGER_S = 0.005
ACTIVE_CONSUMER = "active"  # every lease holder consumes under this name, so pending resumes


class Writes:
    """The writes of one batch, recorded as commands (same calls as a redis-py pipeline) and
    sent as arguments of the fenced apply script."""

    def __init__(self) -> None:
        self.commands: list[list[Any]] = []

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self.commands.append(["HSET", key, *(x for kv in mapping.items() for x in kv)])

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        self.commands.append(
            ["ZADD", key, *(x for m, score in mapping.items() for x in (score, m))]
        )

    def zrem(self, key: str, *members: str) -> None:
        self.commands.append(["ZREM", key, *members])

    def hincrby(self, key: str, field: str, amount: int) -> None:
        self.commands.append(["HINCRBY", key, field, amount])

    def sadd(self, key: str, *members: str) -> None:
        self.commands.append(["SADD", key, *members])

    def set(self, key: str, value: str) -> None:
        self.commands.append(["SET", key, value])

    def register(self, space: Space) -> None:
        """Record the keys written in the generation's key set, so dropping the generation
        unlinks exactly them (no keyspace scan)."""
        written = sorted({str(c[1]) for c in self.commands})
        if written:
            self.commands.append(["SADD", space.key("keys"), *written])

    def args(self) -> list[Any]:
        flat: list[Any] = [len(self.commands)]
        for command in self.commands:
            flat += [len(command), *command]
        return flat


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
        return self.key("pos")


def generation_key(keys: Keys, projection: str, partition: int) -> str:
    return keys.read_model(partition, projection, "gen")


async def documents_by_id(
    client: aioredis.Redis, keys: Keys, projection: Projection, ids: Iterable[str]
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
    client: aioredis.Redis, projection: Projection, batches: Sequence[tuple[Space, list[Envelope]]]
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


async def current_space(
    client: aioredis.Redis, keys: Keys, projection: str, partition: int
) -> Space:
    return (await current_spaces(client, keys, projection, [partition]))[partition]


async def current_spaces(
    client: aioredis.Redis, keys: Keys, projection: str, partitions: Sequence[int]
) -> dict[int, Space]:
    """The current space of each of `partitions`, in one round trip."""
    if not partitions:
        return {}
    raws = await client.mget([generation_key(keys, projection, p) for p in partitions])
    return {
        p: Space(keys, projection, p, int(raw or 1))
        for p, raw in zip(partitions, raws, strict=True)
    }


def prepare_batch(
    projection: Projection, space: Space, events: list[Envelope], loaded: dict[str, Any],
    holder: str = "",
) -> tuple[list[str], list[Any]]:  # fmt: skip
    """The keys and arguments of the apply script for one batch of one partition."""
    writes = Writes()
    projection.apply(writes, space, events, loaded)
    writes.set(space.position_key, events[-1].position)
    writes.register(space)
    keys = [space.keys.projection_lock(space.partition, space.projection),
            generation_key(space.keys, space.projection, space.partition),
            space.keys.log(space.partition)]  # fmt: skip
    args = [holder, space.generation, space.group, events[-1].position, len(events), *writes.args()]
    return keys, args


async def apply_batch(
    client: aioredis.Redis, projection: Projection, space: Space, events: list[Envelope]
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


class ProjectionWorker:
    """Keeps one projection up to date on every partition whose lease it holds: each round is
    one XREADGROUP over their logs, one pipeline of their loads, and one pipeline of fenced apply
    scripts (apply + XACK atomic per partition). A crash leaves a batch pending, never half
    applied; whoever holds the partition next takes it up first."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, projection: Projection, *,
        lease_ms: int = 15_000, batch: int = 2_000, block_ms: int = 1_000,
        partitions: Sequence[int] | None = None,
    ) -> None:  # fmt: skip
        self.client, self.keys, self.projection = client, keys, projection
        # A blocking read must end well inside the lease, or the lease lapses while we wait.
        self.lease_ms, self.batch, self.block_ms = lease_ms, batch, min(block_ms, lease_ms // 4)
        self.me = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.partitions = list(keys.all_partitions() if partitions is None else partitions)
        self.spaces: dict[int, Space] = {}
        self.pending: set[int] = set()  # partitions whose unacknowledged entries come first
        self._apply_script = client.register_script(APPLY_LUA)
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        renewed = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - renewed > self.lease_ms / 3000:
                        await self._hold()
                        renewed = time.monotonic()
                    if not self.spaces:
                        await _sleep_or_stop(stop, min(1.0, self.lease_ms / 3000))
                        continue
                    applied = self.applied
                    if not await self._round():
                        # A fence refused: what was read and not applied is pending again.
                        self.pending.update(self.spaces)
                        renewed = 0.0
                    if 0 < self.applied - applied < self.batch // 4:
                        # A trickle: let a few ms of events gather, so one round (a read, the
                        # loads, a pipeline of scripts) carries many. Costs LINGER_S of lag.
                        await asyncio.sleep(LINGER_S)
                except (RedisError, InfrastructureError) as e:
                    # The server restarts, or a rebuild dropped a group: take up again after,
                    # pending entries first (a batch may have been read and not applied).
                    log.warning("projection %s: %s", self.projection.name, e)
                    self.pending.update(self.spaces)
                    await _sleep_or_stop(stop, 0.2)
                    renewed = 0.0
        finally:
            with contextlib.suppress(RedisError):
                for partition in list(self.spaces):
                    await self.client.eval(RELEASE_LUA, 1, self._lock(partition), self.me)

    def _lock(self, partition: int) -> str:
        return self.keys.projection_lock(partition, self.projection.name)

    async def _hold(self) -> None:
        """Take or renew the lease of every partition we can; follow generation switches."""
        async with self.client.pipeline(transaction=False) as pipe:
            for p in self.partitions:
                pipe.eval(HOLD_LUA, 1, self._lock(p), self.me, self.lease_ms)
                pipe.get(generation_key(self.keys, self.projection.name, p))
            replies = await pipe.execute()
        held: dict[int, Space] = {}
        for i, p in enumerate(self.partitions):
            if replies[2 * i]:
                held[p] = Space(self.keys, self.projection.name, p, int(replies[2 * i + 1] or 1))
        for p, space in held.items():
            if self.spaces.get(p) != space:
                await ensure_group(self.client, self.keys.log(p), space.group)
                self.pending.add(p)
        self.spaces = held

    async def _round(self) -> bool:
        batches = await self._read()
        if not batches:
            return True
        # A round is three round trips whatever the number of partitions: the read, the loads,
        # and the fenced apply scripts.
        spaced = [(self.spaces[p], events) for p, events in batches.items()]
        loaded = await load_documents(self.client, self.projection, spaced)
        prepared = [
            prepare_batch(self.projection, space, events, docs, self.me)
            for (space, events), docs in zip(spaced, loaded, strict=True)
        ]
        results = await self._apply(prepared)
        self.applied += sum(len(e) for e, ok in zip(batches.values(), results, strict=True) if ok)
        return all(results)

    async def _apply(self, prepared: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """The apply scripts, in one pipeline (a batch refused for a lost script is sent again,
        never one that was applied: it would be counted twice)."""
        results = await run_script_calls(self.client, self._apply_script, prepared)
        for result in results:
            if isinstance(result, Exception):
                raise result  # the round fails; what was not applied is read again
        return results

    async def _read(self) -> dict[int, list[Envelope]]:
        """The next batch of each held partition: its pending entries first (after taking it
        over), else new ones, waiting up to block_ms for any."""
        by_group: dict[str, dict[int, str]] = {}
        for p, space in self.spaces.items():
            by_group.setdefault(space.group, {})[p] = "0" if p in self.pending else ">"
        batches: dict[int, list[Envelope]] = {}
        kind = f"{self.projection.kind}.".encode()
        for group, partitions in by_group.items():
            streams: dict[Any, Any] = {self.keys.log(p): at for p, at in partitions.items()}
            block = None if any(at == "0" for at in partitions.values()) else self.block_ms
            # At most about `batch` events a round in all, so a projection catching up a
            # backlog does not hold the process's loop (and the other projections) for long.
            count = max(16, self.batch // len(partitions))
            try:
                reply: Any = await self.client.xreadgroup(
                    group, ACTIVE_CONSUMER, streams, count=count, block=block
                )
            except ResponseError as e:
                raise InfrastructureError(f"projection read failed: {e}") from e
            got = {self.keys.partition_of_log(text(key)): entries for key, entries in reply or []}
            for p, at in partitions.items():
                # Events of other kinds only move the position: their data is not decoded.
                events = [
                    decode_entry(i, f, with_data=f[b"type"].startswith(kind))
                    for i, f in got.get(p, [])
                    if f
                ]
                if at == "0" and not events:
                    self.pending.discard(p)  # caught up on what a previous holder left
                if events:
                    batches[p] = events
        return batches


async def run_projections(
    client: aioredis.Redis,
    keys: Keys,
    projections: list[Projection],
    stop: asyncio.Event,
    *,
    lease_ms: int = 15_000,
    loops: int = 4,
) -> None:
    """Run every projection on every partition it can hold until `stop` is set: `loops`
    loops per projection, each over its own share of the partitions, so that one loop's
    reads and writes overlap another's work."""
    shares = [list(keys.all_partitions())[i::loops] for i in range(loops)]
    workers = [
        ProjectionWorker(client, keys, p, lease_ms=lease_ms, partitions=share)
        for p in projections
        for share in shares
        if share
    ]
    await asyncio.gather(*(w.run(stop) for w in workers))


async def rebuild(
    client: aioredis.Redis,
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


async def _drop_space(client: aioredis.Redis, space: Space) -> None:
    with contextlib.suppress(RedisError):  # no such group or stream: nothing to drop
        await client.xgroup_destroy(space.keys.log(space.partition), space.group)
    index = space.key("keys")
    written = [text(k) for k in await client.smembers(index)]
    for start in range(0, len(written), 1000):
        await client.unlink(*written[start : start + 1000])
    await client.unlink(index)


async def positions(
    client: aioredis.Redis, keys: Keys, projection: str, spaces: dict[int, Space] | None = None
) -> dict[int, str]:
    """Each partition's last applied log position for `projection` (in `spaces`, its current
    ones if not given)."""
    spaces = spaces or await current_spaces(client, keys, projection, keys.all_partitions())
    raws = await client.mget([space.position_key for space in spaces.values()])
    return {p: text(raw) if raw else "0-0" for p, raw in zip(spaces, raws, strict=True)}


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
