"""Test helpers: the queue as a fold of the log, the queue as the read model holds it (with its
indexes and counts checked against its documents), and a random mix of job commands."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgspec

from cairn.commands.jobs.claims import claim_job, expire_lease
from cairn.commands.jobs.held import Held
from cairn.commands.jobs.job import JobRequest, cancel_job, load_job, resubmit_job, submit_job
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.domain.jobs.attempts import RetryPolicy
from cairn.domain.jobs.dispatch import run_order_key, signature
from cairn.domain.jobs.events import job_event_from
from cairn.domain.jobs.job import TERMINAL, Job, evolve
from cairn.domain.tasks.states import Flags
from cairn.projections import layout
from cairn.projections.generations import current_space
from cairn.projections.jobs.queue import NAME, decode_job, facets, member
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore


async def fold_jobs(client: Client, keys: Keys) -> dict[str, Any]:
    store = EventStore(client, keys)
    jobs: dict[str, Job] = {}
    for p in keys.all_partitions():
        after = "0-0"
        while batch := await store.read_log(p, after, count=5000):
            after = batch[-1].position
            for e in batch:
                if e.type.startswith("job."):
                    event = job_event_from(e.type, e.schema, e.data)
                    jobs[e.agg] = evolve(jobs.get(e.agg), event, e.agg, e.ver, e.ts)
    return {i: msgspec.to_builtins(j) for i, j in jobs.items()}


async def read_queue(client: Client, keys: Keys) -> dict[str, Any]:
    """The read model's jobs; also checks that every index, the runnable indexes and the
    counts agree with them."""
    docs: dict[str, Any] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, NAME, p)
        raw: dict[bytes, bytes] = await client.hgetall(layout.jobs(space))  # type: ignore[assignment]
        part = {text(k): decode_job(v) for k, v in raw.items()}
        # Compaction (docs/decisions/0006): a finished job's document is stored deflated.
        for k, v in raw.items():
            assert (v[:1] == b"{") == (part[text(k)].status not in TERMINAL), text(k)
        members = {text(m) for m in await client.zrange(layout.all_jobs(space), 0, -1)}
        assert members == {member(j) for j in part.values()}
        wanted: dict[str, set[str]] = {}
        for job in part.values():
            for facet, value in facets(job).items():
                if value:  # an empty value has no index
                    wanted.setdefault(layout.job_index(space, facet, value), set()).add(member(job))
            for facet in facets(job):
                assert not await client.exists(layout.job_index(space, facet, ""))
        for key, expected in wanted.items():
            assert {text(m) for m in await client.zrange(key, 0, -1)} == expected, key
        runnable: dict[str, set[str]] = {}
        for job in part.values():
            if job.status == "queued":
                sig = signature(job.required_capabilities)
                order = run_order_key(job.priority, job.created_at, job.id)
                runnable.setdefault(sig, set()).add(order)
        signatures = {text(s) for s in await client.smembers(layout.runnable_signatures(space))}
        for sig in signatures | set(runnable):
            found = {text(m) for m in await client.zrange(layout.runnable(space, sig), 0, -1)}
            assert found == runnable.get(sig, set()), sig
        counts = Counter(j.status for j in part.values())
        stored = {text(k): int(v) for k, v in (await client.hgetall(layout.counts(space))).items()}
        assert {k: v for k, v in stored.items() if v} == dict(counts)
        docs.update({i: msgspec.to_builtins(j) for i, j in part.items()})
    return docs


async def run_job_workload(store: EventStore, settings: Settings, rng: random.Random,
                           n: int) -> None:  # fmt: skip
    """`n` random commands on jobs, people's and workers': submit, cancel, resubmit, claim,
    stages, success, failure and lease expiry."""
    contract, flags, policy = settings.contract(), Flags(), RetryPolicy(0, 0)
    ids: list[str] = []
    for _ in range(n):
        roll = rng.random()
        try:
            if roll < 0.3 or not ids:
                runtime = rng.choice(["codex", "claude"])
                payload = {"repository": "acme/app", "targetRuntime": runtime,
                           "task": {"instructions": "x", "publish": {"mode": "none"}}}  # fmt: skip
                request = JobRequest("task", payload, priority=rng.randint(0, 3),
                                     project=f"p{rng.randrange(3)}")  # fmt: skip
                ids.append((await submit_job(store, request, contract, actor="t")).id)
            elif roll < 0.4:
                await cancel_job(store, rng.choice(ids), actor="t")
            elif roll < 0.45:
                await resubmit_job(store, rng.choice(ids), actor="t")
            elif roll < 0.7:
                await claim_job(store, rng.choice(ids), "w", flags)
            elif roll < 0.9:
                job = await load_job(store, rng.choice(ids))
                held = Held(store, job, "w", flags, policy)
                held.open_stage(None, "prepare")
                if rng.random() < 0.5:
                    await held.succeed(("prepare", "succeeded", {}), "ok", None)
                else:
                    await held.fail("prepare", {"code": "x", "message": "no"}, retryable=True)
            else:
                job = await load_job(store, rng.choice(ids))
                await expire_lease(store, job.id, job.epoch, flags, policy)
        except CairnError:
            pass
