"""A job's live output: what its agents print, batched by the worker into a capped stream per
job (`<prefix>:{pNN}:out:<job id>`). It is for watching a run, not the audit log: old entries
are trimmed past `max_entries`, and the whole stream expires a week after its last append (the
full log is an artifact). Text arrives here already redacted; this module stores what it is
given."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from cairn.domain.errors import InfrastructureError, ValidationFailed
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys

TTL_S = 7 * 86_400
ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Some output of a job: its text, the step (1-based) that printed it, and which of the
    process's streams it came from (`out`, `err`, or `cairn` for the worker's own lines)."""

    text: str
    step: int | None = None
    stream: str = "out"


@dataclass(frozen=True, slots=True)
class OutputEntry:
    """A stored chunk with its entry id (what a reader passes as `after` to go on)."""

    id: str
    text: str
    step: int | None
    stream: str


class OutputStream:
    """The live output of jobs, one capped stream per job."""

    def __init__(self, client: Client, keys: Keys, max_entries: int = 20_000) -> None:
        self.redis = client
        self.keys = keys
        self.max_entries = max_entries

    async def append(self, job_id: str, chunks: Sequence[OutputChunk]) -> None:
        """Add `chunks` in order, in one MULTI (a follower sees the batch whole), trimming
        the oldest past `max_entries` and keeping the stream a week past this append."""
        if not chunks:
            return
        key = self.keys.output(job_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for chunk in chunks:
                    fields: dict[Any, Any] = {"text": chunk.text, "stream": chunk.stream}
                    if chunk.step is not None:
                        fields["step"] = chunk.step
                    pipe.xadd(key, fields, maxlen=self.max_entries, approximate=True)
                pipe.expire(key, TTL_S)
                await pipe.execute()
        except RedisError as e:
            raise InfrastructureError(f"append to the output of {job_id} failed: {e}") from e

    async def read(self, job_id: str, after: str = "0-0", count: int = 500) -> list[OutputEntry]:
        """Up to `count` entries strictly after entry id `after`, oldest first."""
        _check_entry_id(after)
        try:
            entries: Any = await self.redis.xrange(
                self.keys.output(job_id), min=f"({after}", count=count
            )
        except RedisError as e:
            raise InfrastructureError(f"read of the output of {job_id} failed: {e}") from e
        return [_entry(entry_id, fields) for entry_id, fields in entries]

    async def follow(
        self, job_id: str, after: str, block_ms: int, count: int = 500
    ) -> list[OutputEntry]:
        """The entries after `after`, waiting up to `block_ms` for the first (one XREAD)."""
        _check_entry_id(after)
        try:
            replies: Any = await self.redis.xread(
                {self.keys.output(job_id): after}, count=count, block=block_ms
            )
        except RedisError as e:
            raise InfrastructureError(f"tail of the output of {job_id} failed: {e}") from e
        return [_entry(i, fields) for _key, entries in replies or [] for i, fields in entries]


def _check_entry_id(value: str) -> None:
    if not ENTRY_ID.fullmatch(value):
        reason = "an output entry id (<milliseconds>-<sequence>, as an entry's id gave it)"
        raise ValidationFailed(f"after must be {reason}", [{"path": "after", "reason": reason}])


def _entry(entry_id: Any, fields: dict[Any, Any]) -> OutputEntry:
    values = {text(k): text(v) for k, v in fields.items()}
    step = values.get("step")
    return OutputEntry(
        id=text(entry_id),
        text=values.get("text", ""),
        step=int(step) if step is not None and step.lstrip("-").isdigit() else None,
        stream=values.get("stream", "out"),
    )
