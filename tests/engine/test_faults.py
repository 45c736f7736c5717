"""Store faults: connections killed, the server stopped and restarted, workers killed. A job
always ends terminal or queued, never runs twice after it succeeded, and is taken back after
the lease of its own claim."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cairn.commands.jobs.job import cancel_job, load_job, resubmit_job
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.domain.jobs.job import TERMINAL
from cairn.streams.connection import connect
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.registry import Registry
from cairn.streams.server import EmbeddedServer, start_server
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, submit


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A server of this test's own, with AOF, that the test may stop and start again."""
    server = start_server(tmp_path / "redis", persist=True)
    yield server
    server.stop()


async def patiently(call: Callable[[], Awaitable[bool]]) -> bool:
    """A check that rides out the faults the test itself causes."""
    try:
        return await call()
    except CairnError:
        return False


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await patiently(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def statuses(store: EventStore, ids: list[str]) -> Counter[str]:
    return Counter([(await load_job(store, i)).status for i in ids])


async def all_terminal(store: EventStore, ids: list[str]) -> bool:
    return all(job.status in TERMINAL for job in [await load_job(store, i) for i in ids])


async def test_killed_connections_leave_no_job_running(
    engine: Engine, store: EventStore, settings: Settings, client: Client
) -> None:
    engine.projector()
    engine.scheduler()
    engine.worker("w1", "noop", concurrency=8, lease=3)
    engine.worker("w2", "noop", concurrency=8, lease=3)
    ids = [
        await submit(store, settings, "noop", {"sleepMs": 1500 + 50 * (i % 20)}) for i in range(40)
    ]
    for _ in range(3):
        await asyncio.sleep(0.9)
        await client.client_kill_filter(_type="normal", skipme=True)
    try:
        await wait_until(lambda: all_terminal(store, ids), 60, "every job terminal")
    finally:
        print("statuses:", await statuses(store, ids))
        for name in ("scheduler", "w1", "w2", "projector"):
            print(f"--- {name}\n{engine.output(name)[-3000:]}")
    assert await statuses(store, ids) == Counter({"succeeded": 40})


async def test_a_job_stuck_in_cancel_requested_is_recovered(
    engine: Engine, store: EventStore, settings: Settings
) -> None:
    # Its worker dies and its dispatch message is gone: the safety net still ends it.
    engine.projector()
    engine.scheduler()
    doomed = engine.worker("doomed", "noop", lease=1)
    [job_id] = [await submit(store, settings, "noop", {"sleepMs": 60_000})]
    await wait_until(
        lambda: _status_is(store, job_id, "running"), 20, "the job running on the doomed worker"
    )
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    await store.redis.delete(store.keys.dispatch("noop"))  # the message is lost for good
    await cancel_job(store, job_id, actor="operator")
    await wait_until(lambda: _status_is(store, job_id, "cancelled"), 30, "the cancel to land")
    result, new_id = await resubmit_job(store, job_id, actor="operator")
    assert new_id != job_id and not result.duplicate


async def _status_is(store: EventStore, job_id: str, status: str) -> bool:
    return (await load_job(store, job_id)).status == status


async def test_a_server_outage_runs_no_finished_job_twice(
    own_server: EmbeddedServer, settings: Settings, tmp_path: Path
) -> None:
    settings = replace(settings, redis_url=own_server.url)
    client = connect(own_server.url)
    keys = Keys(settings.prefix, settings.partitions)
    store = EventStore(client, keys)
    (tmp_path / "engine").mkdir()
    engine = Engine(own_server, settings, tmp_path / "engine")
    try:
        engine.projector()
        engine.scheduler()
        engine.worker("w", "noop", concurrency=8, lease=10)
        ids = [await submit(store, settings, "noop", {"sleepMs": 2500}) for _ in range(8)]
        await wait_until(
            lambda: _count_is(store, ids, "running", 8), 20, "eight jobs running at once"
        )
        port, data = own_server.port, own_server.data_dir
        own_server.process.send_signal(signal.SIGKILL)
        own_server.process.wait()
        await asyncio.sleep(4.5)  # the jobs finish while the store is down
        restarted = start_server(data, port=port, persist=True)
        own_server.process = restarted.process
        await wait_until(lambda: all_terminal(store, ids), 60, "every job terminal")
        events = await log_events(store, keys)
        claims = Counter(e.agg for e in events if e.type == "job.claimed")
        successes = Counter(e.agg for e in events if e.type == "job.succeeded")
        assert claims == Counter(dict.fromkeys(ids, 1))  # none ran a second time
        assert successes == Counter(dict.fromkeys(ids, 1))
    finally:
        engine.stop_all()
        await client.aclose()


async def _count_is(store: EventStore, ids: list[str], status: str, n: int) -> bool:
    return (await statuses(store, ids))[status] == n


async def test_the_reaper_uses_the_lease_of_the_claim_and_dead_workers_leave(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler()
    slow = engine.worker("slow-lease", "noop", lease=120)
    await wait_until(lambda: _registered(store, "slow-lease"), 20, "the first worker seen")
    slow.send_signal(signal.SIGKILL)  # a dead worker with a long lease stays on record
    slow.wait()
    quick = engine.worker("quick", "noop", lease=2)
    job_id = await submit(store, settings, "noop", {"sleepMs": 60_000})
    await wait_until(lambda: _status_is(store, job_id, "running"), 20, "claimed by quick")
    quick.send_signal(signal.SIGKILL)
    quick.wait()
    killed_at = time.monotonic()
    engine.worker("rescuer", "noop", lease=2)
    await wait_until(lambda: _expired(store, keys, job_id), 30, "the lease taken back")
    assert time.monotonic() - killed_at < 15  # the claim's 2 s lease, not the dead 120 s one
    await wait_until(
        lambda: _gone(store, {"slow-lease", "quick"}), 30, "dead workers off the list"
    )


async def _registered(store: EventStore, worker_id: str) -> bool:
    return worker_id in {w["id"] for w in await Registry(store.redis, store.keys).workers()}


async def _gone(store: EventStore, worker_ids: set[str]) -> bool:
    listed = await Registry(store.redis, store.keys).workers(include_stale=True)
    return not worker_ids & {w["id"] for w in listed}


async def _expired(store: EventStore, keys: Keys, job_id: str) -> bool:
    return any(
        e.type == "job.lease_expired" and e.agg == job_id for e in await log_events(store, keys)
    )
