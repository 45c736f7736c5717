"""Running projections: one consumer group per projection and generation on every partition
log, one active consumer per partition (a fenced lease), apply + XACK in one MULTI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from domain.errors import InfrastructureError
from streams.envelope import Envelope, text
from streams.groups import ensure_group, read_group
from streams.keys import Keys

D = TypeVar("D")
ACK_LUA = resources.files("projections").joinpath("ack.lua").read_text()
ACTIVE_CONSUMER = "active"  # every lease holder consumes under this name, so pending resumes


class Projection(Protocol):
    name: str

    async def load(self, client: aioredis.Redis, space: Space, events: list[Envelope]) -> Any:
        """Read what applying `events` needs (outside the transaction)."""

    def apply(self, pipe: Any, space: Space, events: list[Envelope], loaded: Any) -> None:
        """Queue the writes for `events` on a MULTI pipeline; pure apart from queuing."""


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


async def load_docs(
    client: aioredis.Redis,
    key: str,
    events: list[Envelope],
    kind: str,
    decode: Callable[[Any], D],
) -> dict[str, D]:
    """The read-model documents (hash `key`) of the aggregates of `kind` that `events` touch."""
    ids = list(dict.fromkeys(e.agg for e in events if e.type.startswith(f"{kind}.")))
    if not ids:
        return {}
    docs = await client.hmget(key, ids)
    return {i: decode(d) for i, d in zip(ids, docs, strict=True) if d is not None}


async def current_space(
    client: aioredis.Redis, keys: Keys, projection: str, partition: int
) -> Space:
    raw = await client.get(generation_key(keys, projection, partition))
    return Space(keys, projection, partition, int(raw or 1))


async def apply_batch(
    client: aioredis.Redis,
    projection: Projection,
    space: Space,
    events: list[Envelope],
    *,
    watch: tuple[str, ...] = (),
    fence: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> bool:
    """Apply and XACK `events` atomically; False (nothing written) if a watched key moved or
    the fence refused (the lease was lost, the generation switched)."""
    loaded = await projection.load(client, space, events)
    async with client.pipeline(transaction=True) as pipe:
        try:
            if watch:
                await pipe.watch(*watch)
                values = dict(zip(watch, await pipe.mget(*watch), strict=True))
                if not fence(values):
                    return False
            pipe.multi()  # type: ignore[no-untyped-call]
            projection.apply(pipe, space, events, loaded)
            pipe.set(space.position_key, events[-1].position)
            # The ids stay on the server: acknowledging them one by one costs more than applying.
            # EVAL, not EVALSHA: a NOSCRIPT inside MULTI would only surface after the writes.
            pipe.eval(ACK_LUA, 1, space.keys.log(space.partition), space.group,
                         events[-1].position, len(events))  # fmt: skip
            await pipe.execute()
        except WatchError:
            return False
    return True


class PartitionWorker:
    """Keeps one projection of one partition up to date while it holds the partition lease."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        projection: Projection,
        partition: int,
        *,
        lease_ms: int = 15_000,
        batch: int = 500,
        block_ms: int = 1_000,
    ) -> None:
        self.client, self.keys, self.projection, self.partition = (
            client,
            keys,
            projection,
            partition,
        )
        self.lease_ms, self.batch, self.block_ms = lease_ms, batch, block_ms
        self.me = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.lock = keys.projection_lock(partition, projection.name)
        self.gen_key = generation_key(keys, projection.name, partition)
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not await self._acquire():
                await _sleep_or_stop(stop, min(1.0, self.lease_ms / 3000))
                continue
            try:
                await self._consume(stop)
            except (RedisError, InfrastructureError):
                # The server restarts, or a rebuild dropped our generation's group: look again.
                await _sleep_or_stop(stop, 0.2)
        await self.client.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
            " return 0", 1, self.lock, self.me,
        )  # fmt: skip

    def _fence(self, space: Space) -> Callable[[dict[str, Any]], bool]:
        """Writes go through only while we hold the lease and the generation is unchanged."""
        me, gen = self.me.encode(), str(space.generation).encode()
        return lambda values: values[self.lock] == me and (values[self.gen_key] or b"1") == gen

    async def _acquire(self) -> bool:
        got = await self.client.set(self.lock, self.me, nx=True, px=self.lease_ms)
        return bool(got) or (await self.client.get(self.lock)) == self.me.encode()

    async def _consume(self, stop: asyncio.Event) -> None:
        space = await current_space(self.client, self.keys, self.projection.name, self.partition)
        log = self.keys.log(self.partition)
        await ensure_group(self.client, log, space.group)
        renewed = time.monotonic()
        pending = True  # first take up what a crashed holder was given and never acknowledged
        while not stop.is_set():
            if time.monotonic() - renewed > self.lease_ms / 3000:
                if not await self.client.set(self.lock, self.me, xx=True, px=self.lease_ms):
                    return
                if (
                    await current_space(self.client, self.keys, space.projection, self.partition)
                ) != space:
                    return  # a rebuild switched generations: start over on the new one
                renewed = time.monotonic()
            events = await read_group(
                self.client, log, space.group, ACTIVE_CONSUMER, pending=pending,
                count=self.batch, block_ms=self.block_ms,
            )  # fmt: skip
            if not events:
                pending = False
                continue
            ok = await apply_batch(
                self.client, self.projection, space, events,
                watch=(self.lock, self.gen_key), fence=self._fence(space),
            )  # fmt: skip
            if not ok:
                return
            self.applied += len(events)


async def run_projections(
    client: aioredis.Redis,
    keys: Keys,
    projections: list[Projection],
    stop: asyncio.Event,
    *,
    lease_ms: int = 15_000,
) -> None:
    """Run every projection on every partition until `stop` is set."""
    workers = [
        PartitionWorker(client, keys, p, partition, lease_ms=lease_ms)
        for p in projections
        for partition in keys.all_partitions()
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
    async for key in client.scan_iter(match=space.key("*"), count=1000):
        await client.unlink(key)


async def positions(client: aioredis.Redis, keys: Keys, projection: str) -> dict[int, str]:
    """Each partition's last applied log position for `projection`."""
    result = {}
    for partition in keys.all_partitions():
        space = await current_space(client, keys, projection, partition)
        raw = await client.get(space.position_key)
        result[partition] = text(raw) if raw else "0-0"
    return result


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
