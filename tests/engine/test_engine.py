"""The queue engine's acceptance, on the real server with real processes."""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from cairn.commands.settings import Settings
from cairn.commands.tasks.projects import set_project
from cairn.commands.tasks.task import add_dependency, create_task, load_tasks, transition_task
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.streams.dispatch import Dispatch
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import (
    Engine,
    jobs_settled,
    load_all,
    log_events,
    repo_path,
    submit,
    task_payload,
    wait_for,
)


async def test_routing_by_capability(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler()
    engine.worker("only-claude", "claude,git")
    engine.worker("only-gemini", "gemini,git")
    claude = [await submit(store, settings, "task", task_payload("claude")) for _ in range(4)]
    gemini = [await submit(store, settings, "task", task_payload("gemini")) for _ in range(4)]
    await wait_for(await jobs_settled(store, claude + gemini), what="all jobs succeeded")
    claims = {
        e.agg: e.data["worker_id"] for e in await log_events(store, keys) if e.type == "job.claimed"
    }
    assert {claims[j] for j in claude} == {"only-claude"}
    assert {claims[j] for j in gemini} == {"only-gemini"}
    for name in ("only-claude", "only-gemini"):
        engine.processes[name].terminate()
        assert engine.processes[name].wait(20) == 0
    engine.worker("universal", "claude,gemini,git", concurrency=2)
    both = [await submit(store, settings, "task", task_payload(r)) for r in ("claude", "gemini")]
    await wait_for(await jobs_settled(store, both), what="universal took both")
    claims = {
        e.agg: e.data["worker_id"] for e in await log_events(store, keys) if e.type == "job.claimed"
    }
    assert {claims[j] for j in both} == {"universal"}


async def test_work_no_worker_can_take_does_not_hold_up_the_rest(
    engine: Engine, store: EventStore, settings: Settings
) -> None:
    # 40 better jobs that need a capability no worker has, ahead of one a worker can take,
    # all in one project (one partition, one run order).
    engine.projector()
    engine.scheduler()
    engine.worker("only-claude", "claude,git", concurrency=1)
    stuck = [
        await submit(store, settings, "task", task_payload("gemini"), project="p", priority=5)
        for _ in range(40)
    ]
    runnable = await submit(store, settings, "task", task_payload("claude"), project="p")
    await wait_for(await jobs_settled(store, [runnable]), what="the claude job, behind 40")
    assert {j.status for j in await load_all(store, stuck)} == {"queued"}


async def test_one_worker_claims_in_priority_then_age_order(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler()
    priorities = [1, 3, 0, 2, 3, 1, 0, 2, 2, 3, 1, 0, 3, 2, 1, 0, 1, 2, 3, 0]
    ids = [await submit(store, settings, "noop", {}, priority=p) for p in priorities]
    await asyncio.sleep(0.5)  # no live worker: nothing may be dispatched
    assert await Dispatch(store.redis, keys).active_ids() == set()
    engine.worker("solo", "noop", concurrency=1)
    await wait_for(await jobs_settled(store, ids), what="20 jobs")
    claimed = [e.agg for e in await log_events(store, keys) if e.type == "job.claimed"]
    expected = [i for _, _, i in sorted(zip([-p for p in priorities], range(20), ids, strict=True))]
    assert claimed == expected


async def test_repository_concurrency_limit_holds(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler(CAIRN_REPO_CONCURRENCY="1")
    for name in ("w1", "w2"):
        engine.worker(name, "claude,git", concurrency=2, FAKE_CLI_SLEEP="0.3")
    ids = [
        await submit(store, settings, "task", task_payload("claude", repo=f"acme/r{i % 2}"))
        for i in range(8)
    ]
    await wait_for(await jobs_settled(store, ids), timeout=60, what="8 jobs")
    repo_of = {j.id: j.normalized["repository"] for j in await load_all(store, ids)}
    running: dict[str, set[str]] = defaultdict(set)
    overlap = 0
    for e in await log_events(store, keys):  # one project: one partition, one total order
        if e.type == "job.claimed":
            running[repo_of[e.agg]].add(e.agg)
            overlap = max(overlap, len(running[repo_of[e.agg]]))
        elif e.type in {"job.succeeded", "job.failed", "job.lease_expired", "job.released"}:
            running[repo_of[e.agg]].discard(e.agg)
    assert overlap == 1


async def test_a_projects_own_concurrency_holds_and_other_projects_are_not_held(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    await set_project(store, "narrow", {"concurrency": 1}, actor="test")
    engine.projector()
    engine.scheduler()
    engine.worker("w", "noop", concurrency=4)
    narrow = [await submit(store, settings, "noop", {"sleepMs": 300}, project="narrow")
              for _ in range(4)]  # fmt: skip
    wide = [await submit(store, settings, "noop", {"sleepMs": 300}, project="wide")
            for _ in range(4)]  # fmt: skip
    await wait_for(await jobs_settled(store, narrow + wide), timeout=60, what="8 jobs")

    def most_at_once(ids: list[str], events: list[Any]) -> int:
        running: set[str] = set()
        most = 0
        for e in events:
            if e.agg in ids and e.type == "job.claimed":
                running.add(e.agg)
                most = max(most, len(running))
            elif e.agg in ids and e.type in {"job.succeeded", "job.failed", "job.released"}:
                running.discard(e.agg)
        return most

    # One project is one partition: its log is one total order.
    partition = keys.partition_of("narrow")
    narrow_log = [e for e in await log_events(store, keys) if keys.partition_of_id(e.agg) ==
                  partition]  # fmt: skip
    assert most_at_once(narrow, narrow_log) == 1
    wide_log = [e for e in await log_events(store, keys)
                if keys.partition_of_id(e.agg) == keys.partition_of("wide")]  # fmt: skip
    assert most_at_once(wide, wide_log) > 1


async def test_kill_9_mid_job_then_another_worker_finishes(
    engine: Engine, store: EventStore, settings: Settings
) -> None:
    engine.projector()
    engine.scheduler()
    doomed = engine.worker("doomed", "claude,git", lease=1, FAKE_CLI_SLEEP="30")
    job_id = await submit(store, settings, "task", task_payload("claude"))

    async def running() -> bool:
        return (await load_all(store, [job_id]))[0].status == "running"

    await wait_for(running, what="claimed")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    engine.worker("rescuer", "claude,git", lease=1)
    await wait_for(await jobs_settled(store, [job_id]), timeout=40, what="rescued")
    [job] = await load_all(store, [job_id])
    assert job.attempt == 2 and job.outcome and job.outcome["status"] == "succeeded"


async def test_a_stopped_worker_past_its_lease_has_its_late_writes_refused(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler()
    sleeper = engine.worker("sleeper", "claude,git", lease=1, FAKE_CLI_SLEEP="4")
    job_id = await submit(store, settings, "task", task_payload("claude"))

    async def in_its_step() -> bool:  # past prepare, whose mirror lock a stop would hold
        return any(e.type == "job.step_started" and e.agg == job_id
                   for e in await log_events(store, keys))  # fmt: skip

    await wait_for(in_its_step, what="its step running")
    sleeper.send_signal(signal.SIGSTOP)
    engine.worker("other", "claude,git", lease=1)
    try:
        await wait_for(await jobs_settled(store, [job_id]), timeout=40, what="taken over")
    except AssertionError:
        for e in await log_events(store, keys):
            print(e.type, e.agg[-6:], e.actor, e.data)
        raise
    sleeper.send_signal(signal.SIGCONT)
    await asyncio.sleep(5)  # its CLI ends, it tries to report
    events = [e for e in await log_events(store, keys) if e.agg == job_id]
    expired = next(i for i, e in enumerate(events) if e.type == "job.lease_expired")
    assert not [e for e in events[expired:] if e.actor == "sleeper"]
    assert [e.type for e in events].count("job.succeeded") == 1
    assert "late write refused" in engine.output("sleeper") or "lost the lease" in engine.output(
        "sleeper"
    )


async def test_dependencies_run_first(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    ids = []
    for name, status in (("A", "backlog"), ("B", "ready"), ("C", "ready")):
        spec = TaskSpec.model_validate(
            {"title": name, "task_type": "chore", "priority": 1, "status": status}
        )
        ids.append((await create_task(store, spec, actor="test")).id)
    a, b, c = ids
    await add_dependency(store, b, a, actor="test")  # B and C drop to blocked, waiting
    await add_dependency(store, c, b, actor="test")
    await transition_task(store, a, "ready", Flags(), actor="test")
    engine.env.update({"FEATURE_PRD_AUTO_APPROVE_REVIEW": "true",
                       "CAIRN_DEFAULT_REPOSITORY": repo_path("acme/app")})  # fmt: skip
    engine.projector()
    engine.scheduler()
    engine.worker("w", "codex,git,gh", concurrency=2)

    async def all_done() -> bool:
        return all(t.status == "done" for t in (await load_tasks(store, ids)).values())

    try:
        await wait_for(all_done, timeout=40, what="A, B, C done")
    except AssertionError:
        for e in await log_events(store, keys):
            print(e.type, e.agg[-6:], e.actor, e.data)
        raise
    events = await log_events(store, keys)
    job_task = {e.agg: e.data.get("task_id") for e in events if e.type == "job.submitted"}
    order = [job_task[e.agg] for e in events if e.type == "job.claimed"]
    assert order == [a, b, c]


async def test_race_8_workers_2_schedulers_1000_jobs_each_once(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler("scheduler-1")
    engine.scheduler("scheduler-2")
    for i in range(8):
        engine.worker(f"w{i}", "noop", concurrency=2, lease=10)
    ids = [await submit(store, settings, "noop", {}, project=f"p{i % 4}") for i in range(1000)]

    async def settled() -> bool:
        queued = 0
        for p in keys.all_partitions():
            queued += sum(
                1 for e in await store.read_log(p, count=100_000) if e.type == "job.succeeded"
            )
        return queued >= 1000

    await wait_for(settled, timeout=240, what="1,000 jobs succeeded")
    events = await log_events(store, keys)
    succeeded = [e.agg for e in events if e.type == "job.succeeded"]
    assert sorted(succeeded) == sorted(ids)  # every job exactly once
    claims = [(e.agg, e.data["epoch"]) for e in events if e.type == "job.claimed"]
    assert len(claims) == len(set(claims))  # never two claims of one job at one epoch
    assert len({e.data["worker_id"] for e in events if e.type == "job.claimed"}) >= 4

    # Nothing of a finished job stays in the dispatch bookkeeping: every message settled and
    # deleted, every place in the limits freed, no per-job mark left behind.
    dispatch = Dispatch(store.redis, keys)

    async def all_settled() -> bool:
        return not await dispatch.active_ids()

    await wait_for(all_settled, timeout=20, what="every dispatch settled")
    counts = await store.redis.hgetall(dispatch.counts_key)
    assert {int(n) for n in counts.values()} <= {0}
    assert await store.redis.xlen(keys.dispatch("noop")) == 0
    left = {k.decode() async for k in store.redis.scan_iter(match=keys.dispatch_part("*"))}
    assert left <= {keys.dispatch("noop"), dispatch.counts_key, keys.signatures(),
                    dispatch.leader_key}  # fmt: skip


async def test_sigterm_finishes_the_running_job_or_releases_it_after_the_grace(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    engine.projector()
    engine.scheduler()
    patient = engine.worker("patient", "claude,git", FAKE_CLI_SLEEP="1")
    first = await submit(store, settings, "task", task_payload("claude"))

    async def running(job_id: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (await load_all(store, [job_id]))[0].status == "running"

        return check

    await wait_for(await running(first), what="first claimed")
    patient.terminate()
    assert patient.wait(20) == 0
    [job] = await load_all(store, [first])
    assert job.status == "succeeded"  # finished within the grace period, then exited

    hasty = engine.start(
        "hasty",
        "worker",
        "--id",
        "hasty",
        "--capabilities",
        "claude,git",
        "--lease",
        "2",
        "--grace",
        "0.5",
        PATH=engine.fake_path("hasty", sleep="30"),
    )
    second = await submit(store, settings, "task", task_payload("claude"))
    await wait_for(await running(second), what="second claimed")
    hasty.terminate()
    assert hasty.wait(20) == 0
    [job] = await load_all(store, [second])
    assert job.status == "queued" and job.attempt == 1  # given back; no attempt spent
    engine.worker("finisher", "claude,git")
    await wait_for(await jobs_settled(store, [second]), what="second finished elsewhere")
    [job] = await load_all(store, [second])
    assert job.attempt == 1 and job.outcome and job.outcome["status"] == "succeeded"


async def test_drain_stops_new_claims(
    engine: Engine, store: EventStore, settings: Settings
) -> None:
    from cairn.streams.registry import Registry

    engine.projector()
    engine.scheduler()
    await Registry(store.redis, store.keys).set_pause_mode("drain")
    engine.worker("w", "noop")
    job_id = await submit(store, settings, "noop", {})
    await asyncio.sleep(2)
    assert (await load_all(store, [job_id]))[0].status == "queued"
    await Registry(store.redis, store.keys).set_pause_mode("off")
    await wait_for(await jobs_settled(store, [job_id]), what="claimed after drain off")


async def test_quiesce_holds_running_jobs_at_their_next_stage(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    from cairn.streams.registry import Registry

    engine.projector()
    engine.scheduler()
    engine.worker("w", "claude,git", FAKE_CLI_SLEEP="1")
    job_id = await submit(store, settings, "task", task_payload("claude"))

    async def executing() -> bool:
        stages = [
            e.data.get("stage")
            for e in await log_events(store, keys)
            if e.agg == job_id and e.type == "job.stage_started"
        ]
        return "execute" in stages

    await wait_for(executing, what="execute started")
    await Registry(store.redis, store.keys).set_pause_mode("quiesce")
    await asyncio.sleep(3)  # the CLI ends meanwhile; publish must not start
    [job] = await load_all(store, [job_id])
    assert job.status == "running" and [s["stage"] for s in job.stages] == ["prepare", "execute"]
    await Registry(store.redis, store.keys).set_pause_mode("off")
    await wait_for(await jobs_settled(store, [job_id]), what="resumed")
