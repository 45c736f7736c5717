"""The schedules read model equals the fold of the log, live and after a rebuild, and its due
index holds each active schedule at its next fire time."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import msgspec

from cairn.commands.planning.schedules import (
    create_schedule,
    delete_schedule,
    fire_schedule,
    load_schedule,
    pause_schedule,
)
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.planning.schedule_events import schedule_event_from
from cairn.domain.planning.schedules import Schedule, ScheduleInput, evolve, moment, next_fire
from cairn.projections.generations import current_space, positions
from cairn.projections.planning.schedules import NAME, ScheduleProjection, documents_key, due_key
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.projections.fold import fold_kind, log_ends


async def fold(store: EventStore) -> dict[str, Schedule]:
    return await fold_kind(store, "schedule.", schedule_event_from, evolve)


async def read(client: Client, keys: Keys) -> tuple[dict[str, object], dict[str, float]]:
    docs: dict[str, object] = {}
    due: dict[str, float] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, NAME, p)
        for k, v in (await client.hgetall(documents_key(space))).items():
            docs[text(k)] = msgspec.to_builtins(msgspec.json.decode(v, type=Schedule))
        scored: Any = await client.zrange(due_key(space), 0, -1, withscores=True)
        due.update({text(member): float(score) for member, score in scored})
    return docs, due


async def check(client: Client, keys: Keys, store: EventStore) -> None:
    folded = await fold(store)
    docs, due = await read(client, keys)
    assert docs == {i: msgspec.to_builtins(s) for i, s in folded.items()}
    expected = {i: at.timestamp() for i, s in folded.items() if (at := next_fire(s))}
    assert due == expected


async def test_the_schedules_read_model_is_the_fold_of_the_log(
    client: Client, keys: Keys, store: EventStore
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, [ScheduleProjection()], stop, lease_ms=2000)
    )
    contract = ContractSettings()
    try:
        ids = []
        for i in range(5):
            given = ScheduleInput.model_validate({
                "project": f"p{i % 2}", "name": f"s{i}", "cron": ("* * * * *", "@daily")[i % 2],
                "timezone": ("UTC", "Europe/Berlin")[i % 2], "job": {"type": "noop"},
            })  # fmt: skip
            ids.append((await create_schedule(store, given, contract, actor="t")).id)
        first = await load_schedule(store, ids[0])
        at = moment(first.since).replace(second=0, microsecond=0) + timedelta(minutes=1)
        await fire_schedule(store, ids[0], at, contract)
        await pause_schedule(store, ids[1], actor="t")
        await delete_schedule(store, ids[2], actor="t")
        deadline = time.monotonic() + 20
        while await positions(client, keys, NAME) != await log_ends(client, keys):
            assert time.monotonic() < deadline, "the projector did not catch up"
            await asyncio.sleep(0.05)
        await check(client, keys, store)
    finally:
        stop.set()
        await projector
    await rebuild(client, keys, ScheduleProjection())
    await check(client, keys, store)
