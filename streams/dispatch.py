"""Dispatch streams: one Redis stream per capability signature, consumer group `workers`.

The scheduler puts a job on its stream (`dispatch`), a worker reads every stream it is
eligible for in one XREADGROUP, keeps its lease alive by re-claiming its pending message, and
`settle`s the message when the job is done; a reaper reclaims messages whose lease ran out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError, ResponseError

from cairn.domain.errors import InfrastructureError
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.functions import DISPATCH, SETTLE
from cairn.streams.groups import ensure_group
from cairn.streams.keys import Keys

GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Limits:
    max_running: int = 0  # 0: no limit
    per_repository: int = 0
    per_project: int = 0


@dataclass(frozen=True, slots=True)
class Dispatchable:
    """What the dispatch script needs of a job."""

    job_id: str
    version: int
    signature: str
    repository: str
    project: str
    priority: int
    created: str
    project_limit: int = 0  # the project's own limit of runs at once (0: the install's)


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivered, unsettled message: who holds it and how long since it was renewed."""

    signature: str
    id: str
    consumer: str
    idle_ms: int
    job_id: str  # "" if the message itself is gone


@dataclass(frozen=True, slots=True)
class Message:
    """A dispatch message as a worker or the reaper reads it."""

    signature: str
    id: str
    job_id: str
    version: int
    priority: int
    created: str


class Dispatch:
    def __init__(self, client: Client, keys: Keys) -> None:
        self.redis, self.keys = client, keys
        self._dispatch = DISPATCH.bind(client)
        self._settle = SETTLE.bind(client)
        self.active_key = keys.dispatch_part("active")
        self.counts_key = keys.dispatch_part("counts")
        self.leader_key = keys.dispatch_part("leader")
        self._groups: set[str] = set()  # signatures whose group this process has made

    async def dispatch(self, jobs: Sequence[Dispatchable], limits: Limits,
                       leader_token: str = "") -> list[tuple[str, str]]:  # fmt: skip
        """Dispatch jobs in order, in one script call: per job ('ok', message id) or
        (reason, detail), the reason one of active, limit, not_leader."""
        if not jobs:
            return []
        for sig in {j.signature for j in jobs}:
            await self.ensure_group(sig)
        keys = [self.active_key, self.counts_key, self.keys.signatures(), self.leader_key]
        args: list[Any] = [limits.max_running, limits.per_repository, limits.per_project,
                           leader_token, len(jobs)]  # fmt: skip
        for j in jobs:
            args += [self.keys.dispatch(j.signature), j.job_id, j.version, j.signature,
                     j.repository, j.project, j.priority, j.created, j.project_limit]  # fmt: skip
        replies = await self._call(self._dispatch, keys, args)
        return [(text(r[0]), text(r[1])) for r in replies]

    async def settle(self, job_id: str, message: Message) -> None:
        """Acknowledge, delete and free the place of a message; safe to repeat."""
        await self.settle_many([(job_id, message)])

    async def settle_many(self, settled: Sequence[tuple[str, Message]]) -> None:
        """`settle` each (job id, message), in one round trip."""
        if not settled:
            return
        keys = [self.active_key, self.counts_key]
        keys += [self.keys.dispatch(m.signature) for _, m in settled]
        args = [GROUP, *(value for job_id, m in settled for value in (job_id, m.id))]
        await self._call(self._settle, keys, args)

    async def ensure_group(self, sig: str) -> None:
        if sig not in self._groups:
            await ensure_group(self.redis, self.keys.dispatch(sig), GROUP)
            self._groups.add(sig)

    async def signatures(self) -> list[str]:
        return sorted(text(s) for s in await self.redis.smembers(self.keys.signatures()))

    async def read(
        self, consumer: str, signatures: Sequence[str], *, count: int = 1, block_ms: int = 1000
    ) -> list[Message]:
        """New messages for `consumer` from every given signature stream, in one call."""
        if not signatures:
            return []
        streams: dict[Any, Any] = {self.keys.dispatch(s): ">" for s in signatures}
        try:
            reply: Any = await self.redis.xreadgroup(
                GROUP, consumer, streams, count=count, block=block_ms
            )
        except ResponseError as e:
            if "NOGROUP" in str(e):
                for sig in signatures:
                    await self.ensure_group(sig)
                return []
            raise InfrastructureError(f"dispatch read failed: {e}") from e
        except RedisError as e:
            raise InfrastructureError(f"dispatch read failed: {e}") from e
        by_key = {self.keys.dispatch(s): s for s in signatures}
        return [
            _message(by_key[text(key)], entry_id, fields)
            for key, entries in reply or []
            for entry_id, fields in entries
            if fields
        ]

    async def keep_alive(self, consumer: str, messages: Sequence[Message]) -> None:
        """Reset the idle time of our pending messages: our leases go on."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in messages:
                pipe.xclaim(
                    self.keys.dispatch(m.signature), GROUP, consumer, 0, [m.id], justid=True
                )
            await pipe.execute()

    async def overdue(self, sig: str, idle_ms: int, count: int = 200) -> list[Pending]:
        """Delivered messages of `sig` whose holder has not renewed them for `idle_ms`, with
        the job each names (read in one more round trip)."""
        key = self.keys.dispatch(sig)
        try:
            reply: Any = await self.redis.xpending_range(key, GROUP, "-", "+", count, idle=idle_ms)
        except ResponseError as e:
            if "NOGROUP" in str(e):
                return []
            raise InfrastructureError(f"reading pending dispatches failed: {e}") from e
        if not reply:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in reply:
                pipe.xrange(key, p["message_id"], p["message_id"])
            entries = await pipe.execute()
        return [
            Pending(sig, text(p["message_id"]), text(p["consumer"]),
                    int(p["time_since_delivered"]), _job_of(found))
            for p, found in zip(reply, entries, strict=True)
        ]  # fmt: skip

    async def take(self, pending: Pending, idle_ms: int) -> Message | None:
        """The reaper takes a message whose holder stayed silent for `idle_ms`; None if the
        holder renewed it meanwhile (or it is gone)."""
        try:
            reply: Any = await self.redis.xclaim(
                self.keys.dispatch(pending.signature), GROUP, "reaper", idle_ms, [pending.id]
            )
        except ResponseError as e:
            if "NOGROUP" in str(e):
                return None
            raise InfrastructureError(f"taking a dispatch back failed: {e}") from e
        found = [_message(pending.signature, i, f) for i, f in reply or [] if f]
        return found[0] if found else None

    async def count_reclaim(self, job_id: str) -> int:
        """Count one more delivery of `job_id` that was taken back unclaimed; the total."""
        return int(await self.redis.hincrby(self.keys.dispatch_part("poison"), job_id, 1))

    async def is_pending(self, sig: str, message_id: str) -> bool:
        """Whether a message is delivered and not settled (False if its stream is gone)."""
        try:
            reply: Any = await self.redis.xpending_range(
                self.keys.dispatch(sig), GROUP, message_id, message_id, 1
            )
        except ResponseError:
            return False
        return bool(reply)

    async def active(self) -> dict[str, dict[str, Any]]:
        return {
            text(k): orjson.loads(v) for k, v in (await self.redis.hgetall(self.active_key)).items()
        }

    async def active_ids(self) -> set[str]:
        return {text(k) for k in await self.redis.hkeys(self.active_key)}

    async def undelivered(self, signatures: Sequence[str]) -> dict[str, int]:
        """Per signature, messages not yet read by any worker (the prefetch in the stream)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sig in signatures:
                pipe.xinfo_groups(self.keys.dispatch(sig))
            replies = await pipe.execute(raise_on_error=False)
        result = {}
        for sig, groups in zip(signatures, replies, strict=True):
            if isinstance(groups, ResponseError):  # no stream yet
                result[sig] = 0
                continue
            lag = next((g.get("lag") for g in groups if text(g["name"]) == GROUP), 0)
            result[sig] = int(lag or 0)
        return result

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as e:
            raise InfrastructureError(f"dispatch script failed: {e}") from e


def _job_of(entries: Any) -> str:
    return text(entries[0][1][b"job"]) if entries and entries[0][1] else ""


def _message(sig: str, entry_id: Any, fields: dict[bytes, bytes]) -> Message:
    return Message(
        sig,
        text(entry_id),
        text(fields[b"job"]),
        int(fields[b"version"]),
        int(fields[b"priority"]),
        text(fields[b"created"]),
    )
