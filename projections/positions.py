"""Waiting for a projection to reach a log position (read-your-writes), shared by every
request of a process: one poll of all partitions' checkpoints serves every waiter."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from cairn.projections.generations import current_spaces
from cairn.streams.driver import Client
from cairn.streams.envelope import position_key, text
from cairn.streams.keys import Keys

Waiter = tuple[tuple[int, int], "asyncio.Future[None]"]
POLL_S = 0.001
GENERATION_TTL_S = 1.0


class PositionWatcher:
    """Resolves waits on one projection's checkpoints; polls only while someone waits."""

    def __init__(self, client: Client, keys: Keys, projection: str) -> None:
        self.client, self.keys, self.projection = client, keys, projection
        self.seen: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
        self.waiters: dict[int, list[tuple[tuple[int, int], asyncio.Future[None]]]] = defaultdict(
            list
        )
        self._poller: asyncio.Task[None] | None = None
        self._pos_keys: list[str] = []
        self._keys_read_at = 0.0

    async def wait(self, position: str, timeout_s: float) -> bool:
        """True once the projection has applied `position` ("<partition>:<entry id>")."""
        if not position:
            return True
        partition_text, _, entry = position.partition(":")
        partition, target = int(partition_text), position_key(entry)
        if self.seen[partition] >= target:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters[partition].append((target, future))
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return False
        finally:
            waiting = self.waiters[partition]
            if (target, future) in waiting:
                waiting.remove((target, future))
        return True

    async def _poll(self) -> None:
        while any(self.waiters.values()):
            if time.monotonic() - self._keys_read_at > GENERATION_TTL_S:
                spaces = await current_spaces(
                    self.client, self.keys, self.projection, self.keys.all_partitions()
                )
                self._pos_keys = [space.position_key for space in spaces.values()]
                self._keys_read_at = time.monotonic()
            values = await self.client.mget(self._pos_keys)
            for partition, raw in enumerate(values):
                if raw is not None:
                    self.seen[partition] = max(self.seen[partition], position_key(text(raw)))
                kept = []
                for target, future in self.waiters[partition]:
                    if self.seen[partition] >= target:
                        if not future.done():
                            future.set_result(None)
                    else:
                        kept.append((target, future))
                self.waiters[partition] = kept
            await asyncio.sleep(POLL_S)
