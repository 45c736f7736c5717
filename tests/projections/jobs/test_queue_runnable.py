"""The queue read model's runnable indexes, as the scheduler reads them: per signature, across
partitions, in run order, page by page."""

from __future__ import annotations

import asyncio
import random
import uuid

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.commands.jobs.job import JobRequest, cancel_job, load_jobs, submit_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.dispatch import run_order_key, signature
from cairn.domain.jobs.job import Job
from cairn.projections.catalog import all_projections
from cairn.projections.generations import positions
from cairn.projections.jobs.queue import Queue
from cairn.projections.projector import run_projections
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.projections.fold import log_ends

RUNTIMES = ("claude", "gemini")


def task(runtime: str) -> dict[str, object]:
    return {"repository": "acme/app", "targetRuntime": runtime,
            "task": {"instructions": "do it", "publish": {"mode": "none"}}}  # fmt: skip


async def projected(client: aioredis.Redis, keys: Keys) -> None:
    for _ in range(600):
        if await positions(client, keys, "queue") == await log_ends(client, keys):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the projector did not catch up")


async def read_all(queue: Queue, sig: str, page: int, skip: set[str]) -> list[Job]:
    return [job async for chunk in queue.runnable(sig, page, skip=skip, chunk=3) for job in chunk]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), page=st.integers(1, 6))
def test_runnable_is_every_queued_job_of_a_signature_in_run_order(
    server: EmbeddedServer, settings: Settings, seed: int, page: int
) -> None:
    asyncio.run(scenario(server.url, settings, random.Random(seed), page))


async def scenario(url: str, settings: Settings, rng: random.Random, page: int) -> None:
    client = aioredis.Redis.from_url(url)
    store = EventStore(client, Keys(f"r{uuid.uuid4().hex[:8]}", 4))
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, store.keys, list(all_projections().values()), stop, lease_ms=2000)
    )
    try:
        ids: list[str] = []
        for _ in range(rng.randint(0, 30)):
            project, priority = f"p{rng.randint(0, 5)}", rng.randint(0, 3)
            request = JobRequest(
                "task", task(rng.choice(RUNTIMES)), project=project, priority=priority
            )
            ids.append((await submit_job(store, request, settings.contract(), actor="test")).id)
        cancelled = {i for i in ids if rng.random() < 0.2}
        for job_id in cancelled:
            await cancel_job(store, job_id, actor="test")
        jobs = list((await load_jobs(store, ids)).values())
        skip = {i for i in ids if rng.random() < 0.2}
        await projected(client, store.keys)
        queue = Queue(client, store.keys)
        sigs = {signature(j.required_capabilities) for j in jobs}
        queued_sigs = {signature(j.required_capabilities) for j in jobs if j.id not in cancelled}
        assert queued_sigs <= await queue.runnable_signatures() <= sigs
        for sig in sigs:
            expected = sorted(
                (j for j in jobs if signature(j.required_capabilities) == sig
                 and j.id not in cancelled | skip),
                key=lambda j: run_order_key(j.priority, j.created_at, j.id),
            )  # fmt: skip
            got = await read_all(queue, sig, page, skip)
            assert [j.id for j in got] == [j.id for j in expected]
    finally:
        stop.set()
        await projector
        await client.aclose()
