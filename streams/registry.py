"""Workers' presence: each worker writes its record (capabilities, host, running jobs, last
seen) on every heartbeat; readers treat a record not renewed in time as stale. Also the
system-wide worker pause mode (drain, quiesce, off)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from cairn.streams.envelope import text
from cairn.streams.keys import Keys

PAUSE_MODES = ("off", "drain", "quiesce")


class Registry:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.redis = client
        self.workers_key = keys.system("workers")
        self.pause_key = keys.system("worker-pause")

    async def beat(self, record: dict[str, Any]) -> None:
        """Write a worker's record with `last_seen` now."""
        record = {**record, "last_seen": time.time()}
        await self.redis.hset(self.workers_key, record["id"], orjson.dumps(record))

    async def leave(self, worker_id: str) -> None:
        await self.redis.hdel(self.workers_key, worker_id)

    async def workers(self, *, include_stale: bool = False) -> list[dict[str, Any]]:
        """Every worker record with `stale` set when it missed three heartbeats."""
        now = time.time()
        found = []
        for raw in (await self.redis.hgetall(self.workers_key)).values():
            record = orjson.loads(raw)
            record["stale"] = now - record["last_seen"] > 3 * record.get("heartbeat_s", 5)
            if include_stale or not record["stale"]:
                found.append(record)
        return sorted(found, key=lambda r: str(r["id"]))

    async def pause_mode(self) -> str:
        raw = await self.redis.get(self.pause_key)
        return text(raw) if raw else "off"

    async def set_pause_mode(self, mode: str) -> None:
        if mode not in PAUSE_MODES:
            raise ValueError(f"mode must be one of {', '.join(PAUSE_MODES)}")
        await self.redis.set(self.pause_key, mode)
