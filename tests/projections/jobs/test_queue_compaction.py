"""Finished jobs are kept compact in the queue read model (docs/decisions/0006): a terminal job's
document is stored deflated and still reads as the whole job, no job is indexed under an empty
filter value and a filter on one still finds it, and a rebuild writes the same bytes."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace
from typing import Any

import msgspec

from cairn.commands.jobs.claims import claim_job
from cairn.commands.jobs.held import Held
from cairn.commands.jobs.job import JobRequest, load_job, submit_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.attempts import RetryPolicy
from cairn.domain.jobs.job import Job
from cairn.domain.tasks.states import Flags
from cairn.projections import layout
from cairn.projections.generations import current_space
from cairn.projections.jobs.queue import NAME, Queue, QueueProjection, decode_job, encode_job
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.projections.jobs.test_queue_projection import caught_up
from tests.projections.queue_fold import fold_jobs, read_queue, run_job_workload


async def finish(store: EventStore, job_id: str) -> None:
    await claim_job(store, job_id, "w", Flags())
    held = Held(store, await load_job(store, job_id), "w", Flags(), RetryPolicy(0, 0))
    held.open_stage(None, "prepare")
    await held.succeed(("prepare", "succeeded", {}), "ok", None)


async def project(client: Client, keys: Keys) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, [QueueProjection()], stop, lease_ms=2000)
    )
    try:
        await caught_up(client, keys)
    finally:
        stop.set()
        await projector


async def raw_read_model(client: Client, keys: Keys) -> dict[str, Any]:
    """Every document and index of the queue's current generation, as stored (bytes)."""
    found: dict[str, Any] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, NAME, p)
        found[f"{p}:jobs"] = sorted((await client.hgetall(layout.jobs(space))).items())
        async for key in client.scan_iter(match=space.key("idx", "*")):
            name = key.decode().removeprefix(space.key(""))
            found[f"{p}:{name}"] = await client.zrange(key, 0, -1)
    return found


async def test_a_finished_job_is_stored_compact_and_read_whole(
    client: Client, keys: Keys, store: EventStore, settings: Settings
) -> None:
    contract = settings.contract()
    running = await submit_job(store, JobRequest("noop", {}), contract, actor="t")
    done = await submit_job(store, JobRequest("noop", {}), contract, actor="t")
    await claim_job(store, running.id, "w", Flags())
    await finish(store, done.id)
    await project(client, keys)

    space = await current_space(client, keys, NAME, keys.partition_of_id(done.id))
    stored: list[Any] = await client.hmget(layout.jobs(space), [running.id, done.id])
    assert stored[0][:1] == b"{"  # a running job is plain JSON: it is written again soon
    assert stored[1][:1] == b"\x01"
    whole = msgspec.json.encode(decode_job(stored[1]))
    assert len(stored[1]) * 5 < len(whole)
    jobs = await Queue(client, keys).get_jobs([running.id, done.id])
    folded = await fold_jobs(client, keys)
    assert {i: msgspec.to_builtins(j) for i, j in jobs.items()} == folded
    assert jobs[done.id].status == "succeeded" and jobs[done.id].stages


async def test_empty_filter_values_have_no_index_and_still_filter(
    client: Client, keys: Keys, store: EventStore, settings: Settings
) -> None:
    contract = settings.contract()
    noop = await submit_job(store, JobRequest("noop", {}), contract, actor="t")
    payload = {"repository": "acme/app", "targetRuntime": "codex",
               "task": {"instructions": "x", "publish": {"mode": "none"}}}  # fmt: skip
    task = await submit_job(store, JobRequest("task", payload), contract, actor="t")
    await project(client, keys)

    queue = Queue(client, keys)
    space = await current_space(client, keys, NAME, keys.partition_of_id(noop.id))
    assert not await client.exists(layout.job_index(space, "repository", ""))
    no_repository, _ = await queue.list_jobs({"repository": ""}, None, 50)
    assert [j.id for j in no_repository] == [noop.id]
    both = await queue.list_jobs({"repository": "", "type": "noop"}, None, 50)
    assert [j.id for j in both[0]] == [noop.id]
    with_one, _ = await queue.list_jobs({"repository": "acme/app"}, None, 50)
    assert [j.id for j in with_one] == [task.id]


def test_a_document_written_before_compaction_still_reads() -> None:
    job = Job(id="job-00-0123456789abcdefghij012345", version=2, project="p", job_type="noop",
              submitted_type="noop", source="queue", payload={}, normalized={"sleepMs": 0},
              required_capabilities=["noop"], status="cancelled")  # fmt: skip
    assert encode_job(job)[:1] == b"\x01" and decode_job(encode_job(job)) == job
    assert decode_job(msgspec.json.encode(job)) == job  # a finished job as stored before 0006


async def test_a_rebuild_writes_the_same_bytes(client: Client, settings: Settings) -> None:
    keys = Keys(f"q{uuid.uuid4().hex[:8]}", 4)
    settings_ = replace(settings, prefix=keys.prefix, partitions=4)
    store = EventStore(client, keys)
    await run_job_workload(store, settings_, random.Random(5), 120)
    await project(client, keys)
    live = await raw_read_model(client, keys)
    assert any(v[:1] == b"\x01" for p in keys.all_partitions() for _, v in live[f"{p}:jobs"])
    await rebuild(client, keys, QueueProjection())
    assert await raw_read_model(client, keys) == live
    assert await read_queue(client, keys) == await fold_jobs(client, keys)
