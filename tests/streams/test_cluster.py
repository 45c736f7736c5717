"""Cairn on a real 3-master Redis Cluster (the embedded server binary in cluster mode, joined
with its CLI on free ports): the store, reads across partitions, the engine's race (8 workers,
2 schedulers, 1,000 jobs, each exactly once) and a rebuild that equals the fold of the log."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from cairn.commands.settings import Settings
from cairn.projections.rebuild import rebuild
from cairn.projections.tasks.board import BoardProjection
from cairn.streams.connection import connect
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, LocalCluster, start_cluster
from cairn.streams.store import EventStore, NewEvent, StreamWrite
from tests.engine.conftest import Engine, log_events, submit, wait_for
from tests.projections.fold import fold_log, read_board
from tests.projections.workload import run_workload


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = start_cluster(Path(tmp_path_factory.mktemp("cluster")), masters=3)
    yield running
    running.stop()


@pytest.fixture
async def on_cluster(cluster: LocalCluster) -> AsyncIterator[tuple[Client, Keys]]:
    client = connect(cluster.url)
    yield client, Keys(f"c{uuid.uuid4().hex[:8]}", 16)
    await client.aclose()


async def test_the_store_spreads_over_the_masters(on_cluster: tuple[Client, Keys]) -> None:
    client, keys = on_cluster
    store = EventStore(client, keys)
    ids = [keys.new_id("task", f"project-{i}") for i in range(64)]
    for task_id in ids:
        write = StreamWrite(task_id, 0, [NewEvent("task.created", {"n": task_id})])
        await store.append(keys.partition_of_id(task_id), [write])
    found = await store.read_aggregates(ids)
    assert all(found[i][0].data == {"n": i} for i in ids)
    assert len({keys.partition_of_id(i) for i in ids}) > 8
    # MGET over partitions (several slots): read per slot.
    await client.set(keys.read_model(0, "x", "a"), "1")
    await client.set(keys.read_model(5, "x", "a"), "2")
    assert await client.mget([keys.read_model(0, "x", "a"), keys.read_model(5, "x", "a"),
                              keys.read_model(9, "x", "a")]) == [b"1", b"2", None]  # fmt: skip
    # A blocking XREAD over every log answers as soon as one of them has an entry.
    ends: dict[Any, Any] = {keys.log(p): "$" for p in keys.all_partitions()}

    async def read() -> Any:
        return await client.xread(ends, count=10, block=5000)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    later = keys.new_id("task", "late")
    await store.append(keys.partition_of_id(later),
                       [StreamWrite(later, 0, [NewEvent("task.created", {})])])  # fmt: skip
    got = await asyncio.wait_for(reader, 3)
    assert [key for key, _ in got] == [keys.log(keys.partition_of_id(later)).encode()]


async def test_a_rebuild_on_the_cluster_equals_the_fold(on_cluster: tuple[Client, Keys]) -> None:
    client, keys = on_cluster
    await run_workload(EventStore(client, keys), random.Random(11), 200)
    await rebuild(client, keys, BoardProjection())
    assert await read_board(client, keys) == await fold_log(client, keys)


async def test_race_on_the_cluster_each_job_exactly_once(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    keys = Keys(f"c{uuid.uuid4().hex[:8]}", 16)
    settings = Settings(redis_url=cluster.url, prefix=keys.prefix, partitions=16,
                        data_dir=tmp_path)  # fmt: skip
    client = connect(cluster.url)
    store = EventStore(client, keys)
    engine = Engine(cast(EmbeddedServer, cluster), settings, tmp_path)
    try:
        engine.projector()
        engine.scheduler("scheduler-1")
        engine.scheduler("scheduler-2")
        for i in range(8):
            engine.worker(f"w{i}", "noop", concurrency=2, lease=10)
        ids = [await submit(store, settings, "noop", {}, project=f"p{i % 8}") for i in range(1000)]

        async def settled() -> bool:
            done = 0
            for p in keys.all_partitions():
                done += sum(1 for e in await store.read_log(p, count=100_000)
                            if e.type == "job.succeeded")  # fmt: skip
            return done >= 1000

        try:
            await wait_for(settled, timeout=400, what="1,000 jobs succeeded on the cluster")
        except AssertionError:
            for name in engine.processes:
                print(name, engine.output(name)[-1500:])
            raise
        events = await log_events(store, keys)
        succeeded = [e.agg for e in events if e.type == "job.succeeded"]
        assert sorted(succeeded) == sorted(ids)  # every job exactly once
        claims = [(e.agg, e.data["epoch"]) for e in events if e.type == "job.claimed"]
        assert len(claims) == len(set(claims))
    finally:
        engine.stop_all()
        await client.aclose()
