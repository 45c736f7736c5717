"""`cairn archive` through real processes: only finished jobs and tasks older than the cut move;
`cairn tail`, `cairn replay`, `cairn export` and `cairn rebuild` give what they gave before."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from cairn.commands.jobs.claims import claim_job
from cairn.commands.jobs.held import Held
from cairn.commands.jobs.job import JobRequest, load_job, submit_job
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import create_task, transition_task
from cairn.domain.jobs.attempts import RetryPolicy
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.streams.archive import MARKER, Archive
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.api.test_cli import cairn
from tests.streams.test_archive import read_models


async def test_cairn_archive_moves_finished_work_and_reads_stay_the_same(
    server: EmbeddedServer, client: aioredis.Redis, keys: Keys, store: EventStore,
    settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    contract = settings.contract()
    done_job = (await submit_job(store, JobRequest("noop", {}), contract, actor="t")).id
    queued_job = (await submit_job(store, JobRequest("noop", {}), contract, actor="t")).id
    await claim_job(store, done_job, "w", Flags())
    held = Held(store, await load_job(store, done_job), "w", Flags(), RetryPolicy(0, 0))
    held.open_stage(None, "prepare")
    await held.succeed(("prepare", "succeeded", {}), "ok", None)
    tasks = []
    for title in ("cancelled", "open"):
        spec = TaskSpec.model_validate({"title": title, "task_type": "chore", "priority": 1})
        tasks.append((await create_task(store, spec, actor="t")).id)
    await transition_task(store, tasks[0], "cancelled", Flags(), actor="t")
    archive = Archive(tmp_path / "archive" / keys.prefix)
    models = await read_models(client, keys, archive)  # read models, every group caught up

    def run(*args: str) -> str:
        out = cairn(server, keys, *args, CAIRN_DATA_DIR=str(tmp_path))
        assert out.returncode == 0, out.stderr
        return out.stdout

    tail = run("tail", "--json")
    replays = {i: run("replay", i) for i in (done_job, tasks[0])}
    run("export", str(tmp_path / "before.jsonl"))

    assert "would archive 2 aggregates" in run("archive", "--older-than", "0s", "--dry-run")
    assert not archive.exists()
    assert "archived 0 aggregates" in run("archive", "--older-than", "30d")
    assert "archived 2 aggregates" in run("archive", "--older-than", "0s")
    again = run("archive", "--older-than", "0s")  # what is archived is not looked at again
    assert "archived 0 aggregates, 0 events (of 0 finished jobs and 0 finished tasks" in again
    finished = {done_job, tasks[0]}
    for aggregate_id in (done_job, queued_job, *tasks):
        held_ids = set(await client.lrange(keys.stream(aggregate_id), 0, -1))
        assert (held_ids == {MARKER.encode()}) == (aggregate_id in finished), aggregate_id

    assert run("tail", "--json") == tail
    assert {i: run("replay", i) for i in replays} == replays
    assert "archived: " in run("status") and "of 2 aggregates" in run("status")
    run("export", str(tmp_path / "after.jsonl"))
    assert (tmp_path / "after.jsonl").read_bytes() == (tmp_path / "before.jsonl").read_bytes()
    run("rebuild")
    assert await read_models(client, keys, archive) == models

    wrong = cairn(server, keys, "archive", "--older-than", "3x", CAIRN_DATA_DIR=str(tmp_path))
    assert wrong.returncode == 2 and "--older-than" in wrong.stderr
