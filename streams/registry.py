"""Workers' presence: each worker writes its record (capabilities, host, running jobs, last
seen) on every heartbeat; readers treat a record not renewed for three heartbeats as stale,
and drop one not renewed for EXPIRE_BEATS (its worker is gone: the reaper takes its jobs back
by the lease of each claim, not by this record). Also the system-wide worker pause mode
(drain, quiesce, off), with who set it, when and why beside it."""

from __future__ import annotations

import time
from typing import Any

import orjson

from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.functions import EXPIRE_WORKER, call_many
from cairn.streams.keys import Keys

PAUSE_MODES = ("off", "drain", "quiesce")
STALE_BEATS, EXPIRE_BEATS = 3, 6



class Registry:
    def __init__(self, client: Client, keys: Keys) -> None:
        self.redis = client
        self.workers_key = keys.system("workers")
        self.pause_key = keys.system("worker-pause")
        # Beside the mode, not in it: workers read the bare mode on every claim.
        self.pause_reason_key = keys.system("worker-pause-reason")

    async def beat(self, record: dict[str, Any]) -> None:
        """Write a worker's record with `last_seen` now."""
        record = {**record, "last_seen": time.time()}
        await self.redis.hset(self.workers_key, record["id"], orjson.dumps(record))

    async def leave(self, worker_id: str) -> None:
        await self.redis.hdel(self.workers_key, worker_id)

    async def workers(self, *, include_stale: bool = False) -> list[dict[str, Any]]:
        """Every worker record with `stale` set when it missed three heartbeats; records of
        workers gone for EXPIRE_BEATS heartbeats are removed, not returned."""
        now = time.time()
        found, expired = [], []
        for raw in (await self.redis.hgetall(self.workers_key)).values():
            record = orjson.loads(raw)
            silent = (now - record["last_seen"]) / record.get("heartbeat_s", 5)
            if silent > EXPIRE_BEATS:
                expired.append(record)
                continue
            record["stale"] = silent > STALE_BEATS
            if record["stale"]:
                record["running"] = []  # a silent worker is not known to run anything
            if include_stale or not record["stale"]:
                found.append(record)
        if expired:
            await self._expire(expired)
        return sorted(found, key=lambda r: str(r["id"]))

    async def _expire(self, records: list[dict[str, Any]]) -> None:
        """Remove records still as read (a worker back meanwhile has written a new one)."""
        calls = [([self.workers_key], [record["id"], record["last_seen"]]) for record in records]
        await call_many(self.redis, EXPIRE_WORKER, calls)

    async def pause_mode(self) -> str:
        raw = await self.redis.get(self.pause_key)
        return text(raw) if raw else "off"

    async def pause_state(self) -> dict[str, Any]:
        """The mode with the reason, actor and time of its last change. The two keys are in
        different cluster slots, so they are read (and written) apart: a reason recorded for
        another mode than the one in force is not shown."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.pause_key)
            pipe.get(self.pause_reason_key)
            mode_raw, raw = await pipe.execute()
        mode = text(mode_raw) if mode_raw else "off"
        record = orjson.loads(raw) if raw else {}
        if record.get("mode") != mode:
            record = {}
        return {
            "mode": mode,
            "reason": record.get("reason", ""),
            "actor": record.get("actor", ""),
            "at": record.get("at"),
        }

    async def set_pause_mode(self, mode: str, reason: str = "", actor: str = "") -> None:
        """Set the mode, with why and by whom written just before it."""
        if mode not in PAUSE_MODES:
            raise ValueError(f"mode must be one of {', '.join(PAUSE_MODES)}")
        record = {"mode": mode, "reason": reason, "actor": actor, "at": time.time()}
        await self.redis.set(self.pause_reason_key, orjson.dumps(record))
        await self.redis.set(self.pause_key, mode)
