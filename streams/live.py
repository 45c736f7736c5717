"""Live sessions' terminals through the store (decision 0011): per session, a capped stream of
what the terminal showed (`<prefix>:{pNN}:live:<job>:<session>:out`, written by the worker that
serves it) and one of what the person typed (`...:in`, written by the API), and single-use
tickets that let a WebSocket attach. Each out entry carries a count, so a reader that fell behind
the cap knows how much it lost. Text arrives here already redacted; this module stores what it
is given."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from cairn.domain.errors import InfrastructureError
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys

OUT_MAX = 2_000  # entries of terminal output kept per session (a slow viewer loses the rest)
IN_MAX = 1_000
TTL_S = 86_400  # a session's streams outlive it by a day at most


@dataclass(frozen=True, slots=True)
class Frame:
    """One entry: `kind` is `o` (output), `i` (input), `r` (a resize: "COLSxROWS") or `e` (the
    session ended: its reason); `n` counts the session's output frames from 1."""

    id: str
    kind: str
    data: str
    n: int = 0


class LiveChannels:
    def __init__(self, client: Client, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    def key(self, job_id: str, session_id: str, side: str) -> str:
        tag = self.keys.tag(self.keys.partition_of_id(job_id))
        return f"{tag}:live:{job_id}:{session_id}:{side}"

    async def put(self, job_id: str, session_id: str, side: str, frames: list[tuple[str, str, int]]
                  ) -> None:  # fmt: skip
        """Append (kind, data, n) frames to the `out` or `in` side, capped, in one MULTI."""
        if not frames:
            return
        key = self.key(job_id, session_id, side)
        cap = OUT_MAX if side == "out" else IN_MAX
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for kind, data, n in frames:
                    pipe.xadd(key, {"k": kind, "d": data, "n": n}, maxlen=cap, approximate=True)
                pipe.expire(key, TTL_S)
                await pipe.execute()
        except RedisError as e:
            raise InfrastructureError(f"live session {session_id}: write failed: {e}") from e

    async def read(self, job_id: str, session_id: str, side: str, after: str, block_ms: int | None,
                   count: int = 200) -> list[Frame]:  # fmt: skip
        """The frames after entry id `after` (`$`: only new ones), waiting up to `block_ms`."""
        try:
            replies: Any = await self.redis.xread({self.key(job_id, session_id, side): after},
                                                  count=count, block=block_ms)  # fmt: skip
        except RedisError as e:
            raise InfrastructureError(f"live session {session_id}: read failed: {e}") from e
        return [_frame(i, fields) for _key, entries in replies or [] for i, fields in entries]

    async def last_id(self, job_id: str, session_id: str, side: str) -> str:
        """The newest entry's id (`0-0` for none): where a new reader starts."""
        try:
            found: Any = await self.redis.xrevrange(self.key(job_id, session_id, side), count=1)
        except RedisError as e:
            raise InfrastructureError(f"live session {session_id}: read failed: {e}") from e
        return text(found[0][0]) if found else "0-0"

    async def expire(self, job_id: str, session_id: str, seconds: int) -> None:
        """An ended session's streams go after `seconds` (its readers see its end first)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for side in ("in", "out"):
                    pipe.expire(self.key(job_id, session_id, side), seconds)
                await pipe.execute()
        except RedisError as e:
            raise InfrastructureError(f"live session {session_id}: expiry failed: {e}") from e

    async def drop(self, job_id: str, session_id: str) -> None:
        try:
            await self.redis.delete(*(self.key(job_id, session_id, s) for s in ("in", "out")))
        except RedisError as e:
            raise InfrastructureError(f"live session {session_id}: cleanup failed: {e}") from e

    # ---- tickets ------------------------------------------------------------------------------

    def _ticket_key(self, ticket: str) -> str:
        digest = hashlib.sha256(ticket.encode()).hexdigest()
        return f"{self.keys.prefix}:live-ticket:{digest}"

    async def issue(self, ticket: str, claim: str, ttl_s: int) -> None:
        """Store what `ticket` grants (stored by its hash) for `ttl_s` seconds."""
        try:
            await self.redis.set(self._ticket_key(ticket), claim, ex=ttl_s, nx=True)
        except RedisError as e:
            raise InfrastructureError(f"a live session ticket could not be stored: {e}") from e

    async def redeem(self, ticket: str) -> str | None:
        """What the ticket grants, once: a second use (or an expired one) gets None."""
        try:
            found: Any = await self.redis.getdel(self._ticket_key(ticket))
        except RedisError as e:
            raise InfrastructureError(f"a live session ticket could not be read: {e}") from e
        return text(found) if found is not None else None


def _frame(entry_id: Any, fields: dict[Any, Any]) -> Frame:
    values = {text(k): text(v) for k, v in fields.items()}
    n = values.get("n", "0")
    return Frame(id=text(entry_id), kind=values.get("k", "o"), data=values.get("d", ""),
                 n=int(n) if n.isdigit() else 0)  # fmt: skip
