"""The event store: atomic appends to aggregate streams and the partition log, and reads."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cairn.domain.errors import InfrastructureError, VersionConflict
from cairn.streams.archive import MARKER, Archive, default_archive
from cairn.streams.correlation import current_correlation
from cairn.streams.driver import Client
from cairn.streams.envelope import (
    Envelope,
    decode_entry,
    decode_pairs,
    now_rfc3339,
    position_key,
    text,
)
from cairn.streams.functions import APPEND, READ, call_many
from cairn.streams.keys import Keys

_MARKER = MARKER.encode()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be written; id, version and time are assigned at append."""

    type: str
    data: dict[str, Any]
    schema: int = 1


@dataclass(frozen=True, slots=True)
class StreamWrite:
    aggregate_id: str
    expected_version: int  # -1: no check
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class Guard:
    """A stream that must still be at `expected_version` for the append to happen."""

    aggregate_id: str
    expected_version: int


@dataclass(frozen=True, slots=True)
class Meta:
    actor: str = "system"
    correlation_id: str = ""
    causation_id: str = ""


@dataclass(frozen=True, slots=True)
class AppendResult:
    position: str  # partition-log id of the last event written ("" when nothing was)
    versions: list[int] = field(default_factory=list)
    duplicate: bool = False


class EventStore:
    """Redis Streams event store for one install (key prefix) and partition count. Events moved
    to the archive (streams/archive.py) are read from it as if they were still in the log:
    `archive`, else the install's archive under the process's archive root, if any."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, command_ttl_s: int = 86_400,
        archive: Archive | None = None,
    ) -> None:  # fmt: skip
        self.redis = client
        self.keys = keys
        self.command_ttl_s = command_ttl_s
        self.archive = archive if archive is not None else default_archive(keys.prefix)
        self._read = READ.bind(client)
        # Group commit: appends asked for in the same turn of the event loop go to the server
        # in one pipeline (each still its own atomic script call, answered on its own).
        self._queued: list[tuple[list[Any], list[Any], asyncio.Future[Any]]] = []
        self._send_on: asyncio.AbstractEventLoop | None = None  # a send is scheduled there
        self._sending: set[asyncio.Future[None]] = set()

    async def append(
        self,
        partition: int,
        writes: Sequence[StreamWrite],
        *,
        guards: Sequence[Guard] = (),
        meta: Meta = Meta(),
        command_id: str | None = None,
        command_ttl_s: int | None = None,
    ) -> AppendResult:
        """Append all writes or none; VersionConflict names the stream that moved.

        With a command id, a retry returns the first append's result and writes nothing (for
        `command_ttl_s`, by default the install's command TTL).
        """
        keys = [self.keys.log(partition), self.keys.command(partition, command_id or "-")]
        ttl = command_ttl_s or self.command_ttl_s
        args: list[Any] = ["1" if command_id else "0", ttl, len(writes), len(guards)]
        # The correlation of what this process does now (the API request, the job a worker
        # runs), so an event says which request or run wrote it.
        corr = meta.correlation_id or current_correlation.get() or command_id or ""
        ts = now_rfc3339()
        for write in writes:
            keys.append(self._stream_key(write.aggregate_id, partition))
            args += [write.expected_version, len(write.events)]
            for event in write.events:
                args += [
                    str(uuid.uuid4()), event.type, write.aggregate_id, 0, ts, meta.actor,
                    corr, meta.causation_id, event.schema, orjson.dumps(event.data),
                ]  # fmt: skip
        for guard in guards:
            keys.append(self._stream_key(guard.aggregate_id, partition))
        args += [guard.expected_version for guard in guards]
        return _parse_reply(await self._call_append(keys, args))

    async def _call_append(self, keys: list[Any], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queued.append((keys, args, reply))
        if self._send_on is not loop:  # the first of this turn sends them all, after the turn
            self._send_on = loop
            loop.call_soon(self._send_queued)
        return await reply

    def _send_queued(self) -> None:
        loop = asyncio.get_running_loop()
        # Appends queued on another loop belong to callers gone with it (a loop closed
        # before its send ran): never sent, never answered.
        batch = [queued for queued in self._queued if queued[2].get_loop() is loop]
        self._queued, self._send_on = [], None
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[list[Any], list[Any], asyncio.Future[Any]]]) -> None:
        batch = [queued for queued in batch if not queued[2].done()]  # a caller gave up
        if not batch:
            return
        try:
            replies = await call_many(self.redis, APPEND, [q[:2] for q in batch])
        except Exception as e:  # every waiting caller gets it: none hangs
            replies = [e] * len(batch)
        except BaseException as e:  # the send itself was cancelled (the loop is stopping)
            for _, _, reply in batch:
                if not reply.done():
                    reply.set_exception(_append_failed(e))
            raise
        for (_, _, reply), outcome in zip(batch, replies, strict=True):
            if reply.done():  # the caller gave up (cancelled); the append went or not, as before
                continue
            if isinstance(outcome, BaseException):
                reply.set_exception(_append_failed(outcome))
            else:
                reply.set_result(outcome)

    def _stream_key(self, aggregate_id: str, partition: int) -> str:
        if self.keys.partition_of_id(aggregate_id) != partition:
            raise ValueError(f"{aggregate_id} is not in partition {partition}")
        return self.keys.stream(aggregate_id)

    async def read_aggregate(self, aggregate_id: str, after_version: int = 0) -> list[Envelope]:
        """Every event of one aggregate after `after_version`, in version order."""
        return (await self.read_aggregates([aggregate_id], after_version))[aggregate_id]

    async def read_aggregates(
        self, aggregate_ids: Sequence[str], after_version: int = 0
    ) -> dict[str, list[Envelope]]:
        """Several aggregates, one round trip per partition they live in."""
        by_partition: dict[int, list[str]] = {}
        for aggregate_id in dict.fromkeys(aggregate_ids):
            by_partition.setdefault(self.keys.partition_of_id(aggregate_id), []).append(
                aggregate_id
            )
        found: dict[str, list[Envelope]] = {}
        for partition, ids in by_partition.items():
            keys = [self.keys.log(partition), *(self.keys.stream(i) for i in ids)]
            try:
                replies: Any = await self._read(keys=keys, args=[after_version + 1])
            except RedisError as e:
                raise InfrastructureError(f"read of aggregates failed: {e}") from e
            for aggregate_id, flat in zip(ids, replies, strict=True):
                events: list[Envelope | None] = [
                    None if flat[i] == _MARKER else decode_pairs(flat[i], flat[i + 1])
                    for i in range(0, len(flat), 2)
                ]
                found[aggregate_id] = self._with_archived(aggregate_id, after_version, events)
        return found

    def _with_archived(
        self, aggregate_id: str, after_version: int, events: list[Envelope | None]
    ) -> list[Envelope]:
        """`events` with the archived versions (None) read from the archive."""
        missing = [after_version + 1 + i for i, e in enumerate(events) if e is None]
        if not missing:
            return [e for e in events if e is not None]
        archived = self.archive.read_aggregate(aggregate_id, missing) if self.archive else {}
        if len(archived) != len(missing):
            where = self.archive.root if self.archive else "none: no data directory given"
            raise InfrastructureError(
                f"{aggregate_id}: versions {missing[0]}..{missing[-1]} are archived and not "
                f"found in this process's archive ({where}); run it where the install's data "
                "directory (CAIRN_DATA_DIR) is"
            )
        return [e if e is not None else archived[after_version + 1 + i]
                for i, e in enumerate(events)]  # fmt: skip

    async def version(self, aggregate_id: str) -> int:
        """An aggregate's current version (its number of events), without reading them."""
        try:
            return int(await self.redis.llen(self.keys.stream(aggregate_id)))
        except RedisError as e:
            raise InfrastructureError(f"read of {aggregate_id} failed: {e}") from e

    async def versions(self, aggregate_ids: list[str]) -> dict[str, int]:
        """The current version of each aggregate, in one round trip."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in aggregate_ids:
                    pipe.llen(self.keys.stream(i))
                replies = await pipe.execute()
        except RedisError as e:
            raise InfrastructureError(f"read of versions failed: {e}") from e
        return {i: int(n) for i, n in zip(aggregate_ids, replies, strict=True)}

    async def read_log(
        self, partition: int, after: str = "0-0", count: int = 1000
    ) -> list[Envelope]:
        """Up to `count` events of a partition log strictly after position `after`, archived
        ones among them in their places."""
        try:
            entries: Any = await self.redis.xrange(
                self.keys.log(partition), min=f"({after}", count=count
            )
        except RedisError as e:
            raise InfrastructureError(f"read of log {partition} failed: {e}") from e
        live = [decode_entry(entry_id, fields) for entry_id, fields in entries]
        if self.archive is None or not self.archive.exists():
            return live
        archived = [
            e.envelope()
            for e in itertools.islice(
                self.archive.iter_partition(partition, position_key(after)), count
            )
        ]
        return merge_positions(live, archived)[:count] if archived else live

    async def wait_log(
        self, partition: int, after: str, *, block_ms: int = 1000, count: int = 500
    ) -> list[Envelope]:
        """Events of a partition log after `after`, waiting up to `block_ms` for the first."""
        try:
            replies: Any = await self.redis.xread(
                {self.keys.log(partition): after}, count=count, block=block_ms
            )
        except RedisError as e:
            raise InfrastructureError(f"tail of log {partition} failed: {e}") from e
        return [decode_entry(i, f) for _key, entries in replies or [] for i, f in entries]

    async def tail(
        self, positions: dict[int, str], *, block_ms: int = 1000, count: int = 500
    ) -> AsyncIterator[tuple[int, Envelope]]:
        """Follow partition logs from `positions` (updated in place) forever."""
        by_key = {self.keys.log(p): p for p in positions}
        while True:
            streams: dict[Any, Any] = {self.keys.log(p): pos for p, pos in positions.items()}
            try:
                replies: Any = await self.redis.xread(streams, count=count, block=block_ms)
            except RedisError as e:
                raise InfrastructureError(f"tail failed: {e}") from e
            for key, entries in replies or []:
                partition = by_key[text(key)]
                for entry_id, fields in entries:
                    envelope = decode_entry(entry_id, fields)
                    positions[partition] = envelope.position
                    yield partition, envelope

    async def command_record(self, partition: int, command_id: str) -> AppendResult | None:
        """The stored result of an already-applied command, if any."""
        try:
            record = await self.redis.get(self.keys.command(partition, command_id))
        except RedisError as e:
            raise InfrastructureError(f"read of command {command_id} failed: {e}") from e
        return None if record is None else _parse_record(record, duplicate=True)


async def log_ends(client: Client, keys: Keys, partitions: Sequence[int]) -> dict[int, str]:
    """Each partition log's last entry id ("0-0" for an empty log), in one round trip."""
    async with client.pipeline(transaction=False) as pipe:
        for p in partitions:
            pipe.xrevrange(keys.log(p), count=1)
        replies = await pipe.execute()
    ends = zip(partitions, replies, strict=True)
    return {p: text(entries[0][0]) if entries else "0-0" for p, entries in ends}


def merge_positions(live: list[Envelope], archived: list[Envelope]) -> list[Envelope]:
    """Two runs of one partition's events in log order as one, each position once (an event
    still in the log while its archived copy is indexed, after a move that did not finish,
    counts once)."""
    merged: list[Envelope] = []
    last = None
    for event in heapq.merge(live, archived, key=lambda e: position_key(e.position)):
        if event.position != last:
            merged.append(event)
            last = event.position
    return merged


def _append_failed(cause: BaseException) -> InfrastructureError:
    error = InfrastructureError(f"append failed: {cause!r}")
    error.__cause__ = cause
    return error


def _parse_reply(reply: list[Any]) -> AppendResult:
    tag = text(reply[0])
    if tag == "ok":
        return AppendResult(position=text(reply[1]), versions=[int(v) for v in reply[2:]])
    if tag == "dup":
        return _parse_record(reply[1], duplicate=True)
    key, expected, actual = text(reply[1]), int(reply[2]), int(reply[3])
    aggregate_id = key.rsplit(":s:", 1)[-1]  # the index list of the aggregate
    raise VersionConflict(
        f"{aggregate_id} is at version {actual}, not the expected {expected}; "
        "reload it and try again",
        aggregate_id=aggregate_id,
        expected_version=expected,
        actual_version=actual,
    )


def _parse_record(record: bytes | str, *, duplicate: bool) -> AppendResult:
    values = orjson.loads(record)
    return AppendResult(
        position=str(values[1]), versions=[int(v) for v in values[2:]], duplicate=duplicate
    )
