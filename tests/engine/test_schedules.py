"""Schedules on a real engine: two `cairn scheduler` processes (one killed with SIGKILL after
the first fire, so the other takes over) fire each time once: a schedule every minute over
three minutes makes three jobs, not six. A six-field cron (seconds first) checks the same on a
short clock."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime

import pytest

from cairn.commands.planning.schedules import create_schedule, load_schedule
from cairn.commands.settings import Settings
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.planning.schedules import Schedule, ScheduleInput, moment
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, wait_for


async def two_schedulers(engine: Engine) -> None:
    engine.projector()
    engine.scheduler("scheduler-a")
    engine.scheduler("scheduler-b")


async def kill_the_leader(engine: Engine, store: EventStore, keys: Keys) -> str:
    """SIGKILL the scheduler holding the leader lease (its token is host:pid:...)."""
    leader = await store.redis.get(keys.dispatch_part("leader"))
    assert leader is not None, "no scheduler leads"
    pid = int(text(leader).split(":")[1])
    name = next(n for n, p in engine.processes.items() if p.pid == pid)
    engine.processes[name].send_signal(signal.SIGKILL)
    engine.processes[name].wait()
    return name


async def schedule_every(store: EventStore, cron: str) -> Schedule:
    given = ScheduleInput.model_validate({"project": "ops", "name": "tick", "cron": cron,
                                          "job": {"type": "noop"}})  # fmt: skip
    created = await create_schedule(store, given, ContractSettings(), actor="test")
    return await load_schedule(store, created.id)


async def jobs_and_fires(
    store: EventStore, keys: Keys, schedule_id: str
) -> tuple[list[str], list[str]]:
    events = await log_events(store, keys)
    jobs = [e.agg for e in events if e.type == "job.submitted"]
    fires = [e.data["fire_time"] for e in events
             if e.agg == schedule_id and e.type == "schedule.fired"]  # fmt: skip
    return jobs, fires


@pytest.mark.timeout(300)
async def test_every_minute_with_two_schedulers_over_three_minutes_makes_three_jobs(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    await two_schedulers(engine)
    s = await schedule_every(store, "* * * * *")
    start = moment(s.since).timestamp()
    third_minute = (int(start) // 60 + 3) * 60  # the third minute boundary after creation

    async def fired_once() -> bool:
        return (await load_schedule(store, s.id)).fire_count >= 1

    await wait_for(fired_once, timeout=75, what="the first fire")
    killed = await kill_the_leader(engine, store, keys)
    await asyncio.sleep(max(0.0, third_minute + 8 - time.time()))  # past the third, well before
    jobs, fires = await jobs_and_fires(store, keys, s.id)  # the fourth
    assert len(fires) == len(set(fires)) == 3, (fires, killed)
    assert sorted(jobs) == sorted(f["job_id"] for f in (await load_schedule(store, s.id)).fires)
    assert [moment(f).second for f in fires] == [0, 0, 0]
    assert moment(fires[-1]).timestamp() == third_minute


@pytest.mark.timeout(120)
async def test_a_seconds_cron_fires_each_time_once_across_a_takeover(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys
) -> None:
    await two_schedulers(engine)
    s = await schedule_every(store, "*/2 * * * * *")  # every two seconds

    async def fired(n: int) -> bool:
        return (await load_schedule(store, s.id)).fire_count >= n

    await wait_for(lambda: fired(3), timeout=40, what="three fires")
    await kill_the_leader(engine, store, keys)
    killed_at = datetime.now(UTC)
    before = (await load_schedule(store, s.id)).fire_count
    await wait_for(lambda: fired(before + 4), timeout=40, what="fires after the takeover")
    jobs, fires = await jobs_and_fires(store, keys, s.id)
    assert len(fires) == len(set(fires)) == len(jobs)  # one job per fire time, none twice
    times = [moment(f) for f in fires]
    assert times == sorted(times) and all(t.second % 2 == 0 for t in times)
    # The survivor takes the lease over within its 5 s lifetime, then fires the latest missed
    # time once: no burst making up the times it missed.
    later = [t for t in times if t > killed_at]
    elapsed = (datetime.now(UTC) - killed_at).total_seconds()
    assert 4 <= len(later) <= elapsed / 2 + 1
