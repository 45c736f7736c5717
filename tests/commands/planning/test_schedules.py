"""Schedules on the real store: two schedulers firing the same time at once make one job; the
scheduler part (with its clock passed in) fires a schedule missed while nothing ran once, not
once per missed minute; a bad job or template input is refused before anything is written; a
template schedule submits its expanded steps; run now lands once per key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cairn.commands.jobs.job import load_job
from cairn.commands.planning.schedules import (
    create_schedule,
    fire_schedule,
    load_schedule,
    run_schedule_now,
)
from cairn.commands.planning.templates import save_template
from cairn.commands.settings import Settings
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.planning.schedules import ScheduleInput, moment
from cairn.domain.planning.templates import TemplateBody
from cairn.projections.generations import positions
from cairn.projections.planning.schedule_fires import ScheduleFires
from cairn.projections.planning.schedules import NAME, ScheduleProjection, Schedules
from cairn.projections.projector import run_projections
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.projections.fold import log_ends

CONTRACT = ContractSettings(default_repository="acme/app")


def schedule(**fields: Any) -> ScheduleInput:
    return ScheduleInput.model_validate({"project": "ops", "name": "tick", "cron": "* * * * *",
                                         "job": {"type": "noop"}, **fields})  # fmt: skip


async def log_length(store: EventStore) -> int:
    return sum([await store.redis.xlen(store.keys.log(p)) for p in store.keys.all_partitions()])


async def job_submissions(store: EventStore) -> list[str]:
    found = []
    for p in store.keys.all_partitions():
        found += [e.agg for e in await store.read_log(p, count=10_000)
                  if e.type == "job.submitted"]  # fmt: skip
    return found


async def test_two_schedulers_firing_the_same_time_at_once_make_one_job(
    store: EventStore,
) -> None:
    schedule_id = (await create_schedule(store, schedule(), CONTRACT, actor="t")).id
    created = moment((await load_schedule(store, schedule_id)).since)
    at = created.replace(second=0, microsecond=0) + timedelta(minutes=1)
    fired = await asyncio.gather(*[fire_schedule(store, schedule_id, at, CONTRACT)
                                   for _ in range(4)])  # fmt: skip
    assert len({job_id for _, job_id in fired}) == 1
    assert sum(result.written for result, _ in fired) == 2  # the fire and its job, once
    assert await job_submissions(store) == [fired[0][1]]
    s = await load_schedule(store, schedule_id)
    assert s.fire_count == 1 and s.fires[0]["job_id"] == fired[0][1]


async def test_a_missed_fire_runs_once_on_start(
    client: Client, keys: Keys, store: EventStore, settings: Settings
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, [ScheduleProjection()], stop, lease_ms=2000)
    )
    clock = [datetime.now(UTC)]
    part = ScheduleFires(store, Schedules(client, keys), settings, clock=lambda: clock[0])
    try:
        schedule_id = (await create_schedule(store, schedule(), CONTRACT, actor="t")).id

        async def caught_up() -> None:
            while await positions(client, keys, NAME) != await log_ends(client, keys):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(caught_up(), 20)
        clock[0] += timedelta(minutes=42)  # everything was down for 42 minutes
        for _ in range(3):
            await part.fire()
        await asyncio.wait_for(caught_up(), 20)
        await part.fire()
        s = await load_schedule(store, schedule_id)
        assert s.fire_count == 1
        assert moment(s.fires[0]["fire_time"]) == clock[0].replace(second=0, microsecond=0)
        clock[0] += timedelta(minutes=1)
        await part.fire()
        assert (await load_schedule(store, schedule_id)).fire_count == 2
        assert len(await job_submissions(store)) == 2
    finally:
        stop.set()
        await projector


async def test_bad_input_appends_nothing(store: EventStore) -> None:
    await save_template(store, TemplateBody.model_validate({
        "slug": "bump", "title": "Bump", "inputs": [{"name": "count", "type": "integer"}],
        "steps": [{"id": "go", "title": "Bump {{count}}", "instructions": "bump"}],
    }), actor="admin")  # fmt: skip
    before = await log_length(store)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"job": {"type": "noop", "payload": {"sleepMs": -1}}}, "job.payload.sleepMs"),
        ({"job": {"type": "nope"}}, "job.type"),
        ({"job": None, "template": "bump", "inputs": {"count": "three"}}, "inputs.count"),
        ({"job": None, "template": "bump"}, "inputs.count"),
        ({"job": None, "template": "nothing"}, "template"),
        ({"job": None, "template": "bump", "template_version": 9, "inputs": {"count": 1}},
         "template_version"),
    ]
    for fields, path in cases:
        with pytest.raises(ValidationFailed) as caught:
            await create_schedule(store, schedule(**fields), CONTRACT, actor="t")
        assert caught.value.errors[0]["path"] == path, caught.value.errors
    assert await log_length(store) == before


async def test_a_template_schedule_submits_its_steps_and_run_now_lands_once(
    store: EventStore,
) -> None:
    given = schedule(job={"payload": {"repository": "acme/app"}}, template="docs")
    schedule_id = (await create_schedule(store, given, CONTRACT, actor="t")).id
    first, job_id = await run_schedule_now(store, schedule_id, CONTRACT, actor="t",
                                           idempotency_key="k1")  # fmt: skip
    again, same = await run_schedule_now(store, schedule_id, CONTRACT, actor="t",
                                         idempotency_key="k1")  # fmt: skip
    assert first.written == 2 and same == job_id and again.written == 0
    job = await load_job(store, job_id)
    assert [s["id"] for s in job.payload["task"]["steps"]] == ["write_docs", "review", "commit"]
    s = await load_schedule(store, schedule_id)
    assert s.last_fire_time is None and s.fires[0]["manual"]
