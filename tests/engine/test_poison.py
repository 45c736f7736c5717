"""A job whose dispatch keeps being taken and never claimed (it kills its workers before the
claim) is dead-lettered as a poison message, not dispatched forever."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from cairn.commands.settings import Settings
from cairn.projections.catalog import all_projections
from cairn.projections.projector import run_projections
from cairn.projections.scheduler import Scheduler, SchedulerConfig
from cairn.streams.dispatch import Dispatch
from cairn.streams.keys import Keys
from cairn.streams.registry import Registry
from cairn.streams.store import EventStore
from tests.engine.conftest import load_all, log_events, submit, wait_for


async def test_poison_message_is_dead_lettered(
    client: aioredis.Redis, keys: Keys, store: EventStore, settings: Settings
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, list(all_projections().values()), stop, lease_ms=2000)
    )
    config = SchedulerConfig(tick_s=0.02, reap_every_s=0.1)
    scheduler = asyncio.create_task(Scheduler(client, settings, config).run(stop))
    registry, dispatch = Registry(client, keys), Dispatch(client, keys)
    record = {"id": "crashy", "capabilities": ["noop"], "concurrency": 1, "lease_s": 0.3}

    async def crashy_worker() -> None:  # reads its dispatch, then "dies" before claiming
        while not stop.is_set():
            await registry.beat(record)
            await dispatch.read("crashy", ["noop"], count=1, block_ms=100)

    reader = asyncio.create_task(crashy_worker())
    job_id = await submit(store, settings, "noop", {})

    async def dead() -> bool:
        return (await load_all(store, [job_id]))[0].status == "dead_letter"

    try:
        await wait_for(dead, timeout=30, what="dead-lettered")
    finally:
        stop.set()
        await asyncio.gather(projector, scheduler, reader)
    [job] = await load_all(store, [job_id])
    assert job.outcome and job.outcome["reason"]["code"] == "poison_message"
    assert job.attempt == 0  # never claimed
    events = [e.type for e in await log_events(store, keys) if e.agg == job_id]
    assert events == ["job.submitted", "job.dead_lettered"]
