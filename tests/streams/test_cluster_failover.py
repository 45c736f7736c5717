"""A master of a real 3-master Redis Cluster with a replica each killed with SIGKILL: its replica
is promoted, the store goes on (writes retried through StoreUnavailable land at the right
version), and every event that had reached the replica before the kill is still there."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cairn.domain.errors import CairnError
from cairn.projections.rebuild import rebuild
from cairn.projections.tasks.board import BoardProjection
from cairn.streams.connection import connect
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, LocalCluster, start_cluster
from cairn.streams.store import EventStore, NewEvent, StreamWrite
from tests.projections.fold import fold_log, read_board
from tests.projections.workload import run_workload


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = start_cluster(Path(tmp_path_factory.mktemp("failover")), masters=3, replicas=1)
    yield running
    running.stop()


def plain(node: EmbeddedServer, password: str) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=node.port, password=password, socket_timeout=5)


def master_of(cluster: LocalCluster, key: str) -> tuple[EmbeddedServer, EmbeddedServer]:
    """The master serving `key`'s slot, and its replica (once the replica has joined)."""
    any_node = plain(cluster.nodes[0], cluster.password)
    slot = int(any_node.cluster("keyslot", key))
    by_port = {node.port: node for node in cluster.nodes}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        slots: Any = any_node.cluster("slots")
        for start, end, master, *replicas in slots:
            if int(start) <= slot <= int(end) and replicas:
                return by_port[int(master[1])], by_port[int(replicas[0][1])]
        time.sleep(0.1)
    raise AssertionError(f"no master with a replica serves slot {slot}")


def wait_replicated(master: EmbeddedServer, replica: EmbeddedServer, password: str) -> None:
    """Until the replica has every write the master has (replication offsets)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ahead = int(plain(master, password).info("replication")["master_repl_offset"])
        if int(plain(replica, password).info("replication")["slave_repl_offset"]) >= ahead:
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


async def test_a_killed_master_is_replaced_by_its_replica_and_nothing_replicated_is_lost(
    cluster: LocalCluster,
) -> None:
    keys = Keys(f"f{uuid.uuid4().hex[:8]}", 16)
    client = connect(cluster.url)
    try:
        await killed_master(cluster, client, keys)
    finally:
        await client.aclose()


async def killed_master(cluster: LocalCluster, client: Client, keys: Keys) -> None:
    store = EventStore(client, keys)
    await run_workload(store, random.Random(13), 150)
    ids = [keys.new_id("task", f"project-{i}") for i in range(64)]
    for aggregate_id in ids:
        write = StreamWrite(aggregate_id, 0, [NewEvent("test.made", {"n": aggregate_id})])
        await store.append(keys.partition_of_id(aggregate_id), [write])
    victim = ids[0]
    master, replica = master_of(cluster, keys.stream(victim))
    wait_replicated(master, replica, cluster.password)
    before = await store.read_aggregates(ids)
    board = await fold_log(client, keys)

    master.process.send_signal(signal.SIGKILL)
    master.process.wait()
    killed = time.monotonic()
    # Writes to the dead master's slots fail with StoreUnavailable until the replica takes
    # over; a caller retries, and the write lands once, at the version it expected.
    while True:
        try:
            write = StreamWrite(victim, 1, [NewEvent("test.after", {})])
            await store.append(keys.partition_of_id(victim), [write])
            break
        except CairnError:
            assert time.monotonic() - killed < 30, "no master for the slot after 30 s"
            await asyncio.sleep(0.2)
    print(f"writes to the killed master's slots resumed after {time.monotonic() - killed:.1f}s")
    promoted = plain(replica, cluster.password).info("replication")["role"]
    assert promoted == "master"

    after = await store.read_aggregates(ids)
    assert {i: after[i][:1] for i in ids} == before
    assert [e.type for e in after[victim]] == ["test.made", "test.after"]
    assert await fold_log(client, keys) == board
    await rebuild(client, keys, BoardProjection())
    assert await read_board(client, keys) == board
