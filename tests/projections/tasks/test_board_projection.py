"""The board read model equals a fold of the log: in-process, after kill -9, after rebuild."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.projections.generations import positions
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.projections.tasks.board import BoardProjection
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.projections.fold import fold_log, log_ends, read_board
from tests.projections.workload import run_workload


async def caught_up(client: aioredis.Redis, keys: Keys, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await positions(client, keys, "board") == await log_ends(client, keys):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the projector did not catch up")


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 80))
def test_board_equals_fold_of_log(server: EmbeddedServer, seed: int, n: int) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(server.url)
        keys = Keys(f"h{uuid.uuid4().hex[:8]}", 4)
        stop = asyncio.Event()
        projector = asyncio.create_task(
            run_projections(client, keys, [BoardProjection()], stop, lease_ms=2000)
        )
        await run_workload(EventStore(client, keys), random.Random(seed), n)
        await caught_up(client, keys)
        assert await read_board(client, keys) == await fold_log(client, keys)
        stop.set()
        await projector
        await client.aclose()

    asyncio.run(scenario())


def _projector(server: EmbeddedServer, keys: Keys) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CAIRN_REDIS_URL": server.url, "CAIRN_PREFIX": keys.prefix,
           "CAIRN_PARTITIONS": str(keys.partitions)}  # fmt: skip
    argv = [sys.executable, "-m", "cairn.api.cli", "projector", "--lease-ms", "1000"]
    return subprocess.Popen(argv, env=env)


async def test_kill_9_of_the_projector_mid_batch_loses_and_repeats_nothing(
    server: EmbeddedServer, client: aioredis.Redis, keys: Keys, store: EventStore
) -> None:
    rng = random.Random(7)
    await run_workload(store, rng, 400)  # a backlog, so the first projector is mid-catch-up
    first = _projector(server, keys)
    try:
        writer = asyncio.create_task(run_workload(store, rng, 600))
        for _ in range(400):  # kill it as soon as it has applied something, mid-stream
            if any(p != "0-0" for p in (await positions(client, keys, "board")).values()):
                break
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        await writer
    finally:
        first.kill()
    second = _projector(server, keys)
    try:
        await caught_up(client, keys)
    finally:
        second.terminate()
        second.wait(10)
    assert await read_board(client, keys) == await fold_log(client, keys)


async def test_rebuild_into_a_new_generation_matches_the_fold(
    client: aioredis.Redis, keys: Keys, store: EventStore
) -> None:
    await run_workload(store, random.Random(3), 300)
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_projections(client, keys, [BoardProjection()], stop, lease_ms=2000)
    )
    await caught_up(client, keys)
    seen: list[int] = []
    applied = await rebuild(client, keys, BoardProjection(), lambda done, total: seen.append(done))
    assert applied == sum([await client.xlen(keys.log(p)) for p in keys.all_partitions()])
    assert seen and seen[-1] == applied
    await run_workload(store, random.Random(4), 50)  # the running projector follows the switch
    await caught_up(client, keys)
    assert await read_board(client, keys) == await fold_log(client, keys)
    leftovers = [k async for k in client.scan_iter(match=f"{keys.prefix}:*:rm:board:g1:*")]
    assert leftovers == []
    stop.set()
    await runner


class LeaseLostOnce(BoardProjection):
    """The board, except that the first round loses its lease between reading and applying."""

    def __init__(self, url: str, keys: Keys) -> None:
        self.url, self.keys, self.lost = url, keys, False

    def documents(self, space: Any) -> str:
        # Asked for when the round loads what its batches touch, after the read.
        if not self.lost:
            self.lost = True
            with redis.Redis.from_url(self.url) as other:
                other.delete(self.keys.projection_lock(space.partition, "board"))
        return super().documents(space)


async def test_a_batch_refused_by_the_fence_is_applied_later_and_nothing_skipped(
    client: aioredis.Redis, keys: Keys, store: EventStore, server: EmbeddedServer
) -> None:
    await run_workload(store, random.Random(11), 200)
    stop = asyncio.Event()
    projection = LeaseLostOnce(server.url, keys)
    runner = asyncio.create_task(run_projections(client, keys, [projection], stop, lease_ms=2000))
    await run_workload(store, random.Random(12), 100)  # more arrives after the refusal
    await caught_up(client, keys)
    stop.set()
    await runner
    assert projection.lost
    assert await read_board(client, keys) == await fold_log(client, keys)


async def test_the_projector_survives_the_server_losing_its_scripts(
    client: aioredis.Redis, keys: Keys, store: EventStore
) -> None:
    """A restart empties the script cache: the apply script is loaded again, and no batch is
    applied twice (the board's counts still match its columns and the fold)."""
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_projections(client, keys, [BoardProjection()], stop, lease_ms=2000)
    )
    rng = random.Random(21)
    for _ in range(5):
        await run_workload(store, rng, 60)
        await client.script_flush()
    await caught_up(client, keys)
    stop.set()
    await runner
    assert await read_board(client, keys) == await fold_log(client, keys)
