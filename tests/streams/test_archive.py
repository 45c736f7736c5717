"""The archive (streams/archive.py, streams/retention.py) on a real server: events moved out of
the logs read back exactly as before (each aggregate, each partition in log order, a rebuild of
every read model, an export), an archived aggregate takes new events at its version, a move is
refused for an aggregate that changed or a consumer group that has not applied it, and a move
that did not finish reads each event once."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from cairn.api.audit import follow_log, format_event, replay_lines
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import create_task, transition_task
from cairn.domain.errors import InfrastructureError, VersionConflict
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.projections.catalog import all_projections
from cairn.projections.rebuild import rebuild
from cairn.streams import retention
from cairn.streams.archive import MARKER, Archive, ArchivedAggregate, Segment
from cairn.streams.envelope import text
from cairn.streams.export import write_export
from cairn.streams.groups import ensure_group
from cairn.streams.keys import Keys
from cairn.streams.retention import archive_aggregates
from cairn.streams.store import EventStore, Guard, NewEvent, StreamWrite
from tests.api.test_backup import dump
from tests.projections.queue_fold import run_job_workload
from tests.projections.workload import run_workload

LATER = "9999-01-01T00:00:00.000Z"  # a cut after every event


async def aggregate_ids(client: aioredis.Redis, keys: Keys) -> list[str]:
    found = []
    async for raw in client.scan_iter(match=f"{keys.prefix}:{{p*}}:s:*", count=1000):
        found.append(text(raw).rsplit(":s:", 1)[1])
    return sorted(found)


async def read_models(client: aioredis.Redis, keys: Keys, archive: Archive) -> dict[str, Any]:
    """Every read model rebuilt, generation numbers taken out of names and values."""
    for projection in all_projections().values():
        await rebuild(client, keys, projection, archive=archive)
    models = await dump(client, keys, "{p*}:rm:*")
    return {re.sub(r":g\d+", ":g", k): re.sub(r":g\d+", ":g", v)
            for k, v in models.items() if not k.endswith(":gen")}  # fmt: skip


async def everything(client: aioredis.Redis, keys: Keys, archive: Archive) -> dict[str, Any]:
    """What a reader gets: the log as `cairn tail` prints it, every aggregate, every replay, an
    export, every read model rebuilt, and each aggregate's version."""
    store = EventStore(client, keys, archive=archive)
    ids = await aggregate_ids(client, keys)
    tail = [format_event(p, e, as_json=True)
            async for p, e in follow_log(client, keys, archive=archive)]  # fmt: skip
    export = io.BytesIO()
    await write_export(client, keys, export.write, archive=archive)
    return {
        "tail": tail,
        "aggregates": await store.read_aggregates(ids),
        "replays": [await replay_lines(client, keys, i, archive=archive) for i in ids],
        "export": export.getvalue(),
        "read models": await read_models(client, keys, archive),
        "versions": await store.versions(ids),
    }


async def workload(store: EventStore, settings: Settings, seed: int) -> None:
    await run_workload(store, random.Random(seed), 150)
    await run_job_workload(store, settings, random.Random(seed), 120)


async def test_archive_then_every_read_gives_what_it_gave_before(
    client: aioredis.Redis, keys: Keys, store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive" / keys.prefix)
    await workload(store, settings, 1)
    before = await everything(client, keys, archive)
    assert len(before["tail"]) > 100

    ids = await aggregate_ids(client, keys)
    moved = await archive_aggregates(client, keys, archive, ids, LATER)
    assert moved.aggregates == len(ids) and moved.events == len(before["tail"])
    assert not (moved.changed or moved.unprojected or moved.recent)
    assert sum([await client.xlen(keys.log(p)) for p in keys.all_partitions()]) == 0
    some = keys.stream(ids[0])
    assert set(await client.lrange(some, 0, -1)) == {MARKER.encode()}

    after = await everything(client, keys, archive)
    for name, value in before.items():
        assert after[name] == value, name
    # An import of the export puts every event back in a log, byte for byte, at its place.
    target = Keys(keys.prefix + "i", keys.partitions)
    lines = before["export"].splitlines(keepends=True)
    from cairn.streams.export import import_lines

    await import_lines(client, target, lines[1:], len(lines) - 1)
    exported = [line for line in lines[1:]]
    reimported = io.BytesIO()
    await write_export(client, target, reimported.write, archive=Archive(tmp_path / "none"))
    assert reimported.getvalue().splitlines(keepends=True)[1:] == exported


async def test_an_archived_aggregate_takes_new_events_at_its_version(
    client: aioredis.Redis, keys: Keys, store: EventStore, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive" / keys.prefix)
    store = EventStore(client, keys, archive=archive)
    spec = TaskSpec.model_validate({"title": "reopened", "task_type": "chore", "priority": 1})
    task_id = (await create_task(store, spec, actor="t")).id
    await transition_task(store, task_id, "cancelled", Flags(), actor="t")
    version = await store.version(task_id)
    await archive_aggregates(client, keys, archive, [task_id], LATER)
    assert await store.version(task_id) == version

    # The command layer reads it from the archive and appends at its version (a reopen).
    await transition_task(store, task_id, "backlog", Flags(), actor="t")
    events = await store.read_aggregate(task_id)
    assert [e.ver for e in events] == list(range(1, version + 2))
    assert events[-1].data["to_status"] == "backlog" and events[0].type == "task.created"
    p = keys.partition_of_id(task_id)
    with pytest.raises(VersionConflict):
        await store.append(p, [StreamWrite(task_id, version, [NewEvent("task.noted", {})])])
    with pytest.raises(VersionConflict):  # a guard on it holds at its version too
        await store.append(p, [], guards=[Guard(task_id, version)])
    await store.append(p, [], guards=[Guard(task_id, version + 1)])

    # Archived again: only the new version moves; reads give all of them.
    moved = await archive_aggregates(client, keys, archive, [task_id], LATER)
    assert moved.events == 1
    assert await store.read_aggregate(task_id) == events
    assert await store.read_aggregate(task_id, after_version=version) == events[-1:]
    assert await client.llen(keys.stream(task_id)) == version + 1
    assert await client.xlen(keys.log(p)) == 0


async def test_a_move_is_refused_for_a_changed_aggregate_or_a_lagging_group(
    client: aioredis.Redis, keys: Keys, store: EventStore, settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    archive = Archive(tmp_path / "archive" / keys.prefix)
    store = EventStore(client, keys, archive=archive)
    await workload(store, settings, 2)
    before = await everything(client, keys, archive)
    ids = await aggregate_ids(client, keys)
    changed = ids[0]
    write_segment, move = archive.write_segment, retention._move
    late: list[Any] = []

    def then_change(aggregates: list[ArchivedAggregate]) -> Segment:
        segment = write_segment(aggregates)
        version = len(before["aggregates"][changed])
        late.append(store.append(keys.partition_of_id(changed), [
            StreamWrite(changed, version, [NewEvent("test.noted", {"late": True})])]))  # fmt: skip
        return segment

    async def move_after_the_event(*args: Any) -> Any:
        await late.pop()
        return await move(*args)

    # An event lands between the segment's writing and the move: that aggregate stays.
    with monkeypatch.context() as patched:
        patched.setattr(archive, "write_segment", then_change)
        patched.setattr(retention, "_move", move_after_the_event)
        moved = await archive_aggregates(client, keys, archive, ids, LATER)
    assert moved.changed == [changed] and moved.aggregates == len(ids) - 1
    events = await store.read_aggregate(changed)
    assert events[:-1] == before["aggregates"][changed] and events[-1].data == {"late": True}
    assert set(await client.lrange(keys.stream(changed), 0, -1)) != {MARKER.encode()}
    tail = [e async for _, e in follow_log(client, keys, archive=archive)]
    assert len(tail) == len(before["tail"]) + 1 and len({e.id for e in tail}) == len(tail)

    # A consumer group that has not applied its events: the aggregate is not moved, whether
    # the group was there before (no segment is written) or made meanwhile (the move script).
    await read_models(client, keys, archive)  # every projection's group has applied all
    log = keys.log(keys.partition_of_id(changed))
    await ensure_group(client, log, "late-reader", start="0")
    moved = await archive_aggregates(client, keys, archive, [changed], LATER)
    assert moved.unprojected == [changed] and not moved.segments
    await client.xgroup_destroy(log, "late-reader")

    def then_a_group(aggregates: list[ArchivedAggregate]) -> Segment:
        segment = write_segment(aggregates)
        late.append(ensure_group(client, log, "late-reader", start="0"))
        return segment

    with monkeypatch.context() as patched:
        patched.setattr(archive, "write_segment", then_a_group)
        patched.setattr(retention, "_move", move_after_the_event)
        moved = await archive_aggregates(client, keys, archive, [changed], LATER)
    assert moved.unprojected == [changed] and len(moved.segments) == 1
    assert await client.llen(keys.stream(changed)) == len(events)
    assert await store.read_aggregate(changed) == events
    assert len([e async for _, e in follow_log(client, keys, archive=archive)]) == len(tail)


async def test_a_move_that_did_not_finish_reads_each_event_once(
    client: aioredis.Redis, keys: Keys, store: EventStore, settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    archive = Archive(tmp_path / "archive" / keys.prefix)
    await workload(store, settings, 3)
    before = await everything(client, keys, archive)

    async def crashed(*args: Any) -> Any:
        raise InfrastructureError("the archiver died here")

    monkeypatch.setattr(retention, "_move", crashed)
    with pytest.raises(InfrastructureError):
        await archive_aggregates(client, keys, archive, await aggregate_ids(client, keys), LATER)
    assert archive.count()[1] == len(before["tail"])  # in the archive, and still in the log
    after = await everything(client, keys, archive)
    for name, value in before.items():
        if name == "export":  # the header's count (for progress) counts both copies
            value, after[name] = value.split(b"\n", 1)[1], after[name].split(b"\n", 1)[1]
        assert after[name] == value, name


async def test_a_process_without_the_archive_says_where_it_is(
    client: aioredis.Redis, keys: Keys, store: EventStore, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive" / keys.prefix)
    spec = TaskSpec.model_validate({"title": "gone", "task_type": "chore", "priority": 1})
    task_id = (await create_task(store, spec, actor="t")).id
    await archive_aggregates(client, keys, archive, [task_id], LATER)
    with pytest.raises(InfrastructureError, match="archived and not found"):
        await EventStore(client, keys).read_aggregate(task_id)
    assert len(await EventStore(client, keys, archive=archive).read_aggregate(task_id)) == 1
