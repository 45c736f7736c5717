"""Leases: a key that names its holder and expires unless renewed. A projector holds one per
partition it applies, the leading scheduler holds one; whoever comes next takes a lease once
it has run out."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.streams.driver import Client
from cairn.streams.functions import HOLD_LEASE, RELEASE_LEASE, call_many


class Leases:
    def __init__(self, client: Client) -> None:
        self.redis = client
        self._hold = HOLD_LEASE.bind(client)
        self._release = RELEASE_LEASE.bind(client)

    async def hold(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Take `key` if free or renew it if `holder` has it; True when held afterwards."""
        return bool(await self._hold(keys=[key], args=[holder, ttl_ms]))

    async def hold_many(self, keys: Sequence[str], holder: str, ttl_ms: int) -> list[bool]:
        """`hold` for each key, in one round trip."""
        replies = await call_many(
            self.redis, HOLD_LEASE, [([key], [holder, ttl_ms]) for key in keys]
        )
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return [bool(reply) for reply in replies]

    async def release(self, key: str, holder: str) -> None:
        """Give `key` up if `holder` still has it (after a stop: the next one need not wait)."""
        await self._release(keys=[key], args=[holder])
