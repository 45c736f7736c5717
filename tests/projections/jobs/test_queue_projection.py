"""The queue read model (documents, filter indexes, runnable indexes, counts) equals a fold of
the log, live and after a rebuild."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.commands.settings import Settings
from cairn.projections.generations import positions
from cairn.projections.jobs.queue import QueueProjection
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.connection import connect
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.projections.fold import log_ends
from tests.projections.queue_fold import fold_jobs, read_queue, run_job_workload


async def caught_up(client: Client, keys: Keys, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await positions(client, keys, "queue") == await log_ends(client, keys):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the projector did not catch up")


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 80))
def test_queue_equals_fold_of_log(server: EmbeddedServer, seed: int, n: int) -> None:
    async def scenario() -> None:
        client = connect(server.url)
        keys = Keys(f"q{uuid.uuid4().hex[:8]}", 4)
        settings_ = replace(Settings(), prefix=keys.prefix, partitions=4)
        stop = asyncio.Event()
        projector = asyncio.create_task(
            run_projections(client, keys, [QueueProjection()], stop, lease_ms=2000)
        )
        try:
            await run_job_workload(EventStore(client, keys), settings_, random.Random(seed), n)
            await caught_up(client, keys)
            assert await read_queue(client, keys) == await fold_jobs(client, keys)
        finally:
            stop.set()
            await projector
        try:
            await rebuild(client, keys, QueueProjection())
            assert await read_queue(client, keys) == await fold_jobs(client, keys)
        finally:
            await client.aclose()

    asyncio.run(scenario())
