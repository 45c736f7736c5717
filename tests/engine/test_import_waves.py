"""An imported graph with auto_ready runs on real workers in dependency order, never more than
its parallelism hint ready or in progress at once: checked from the log."""

from __future__ import annotations

from cairn.commands.planning.imports import commit_import
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import load_tasks
from cairn.domain.planning.preview import ImportRequest
from cairn.domain.tasks.states import Flags
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, wait_for

PRD = """\
# Release pipeline

## Build
1. Compile the service
2. Package the image (depends on #1)
3. Sign the image (depends on #2)

## Checks
1. Unit tests
2. Integration tests (depends on "Compile the service")
3. Security scan (depends on "Package the image")

## Ship
1. Deploy to staging (depends on "Sign the image", "Integration tests" and "Security scan")
2. Deploy to production (depends on #1 and "Unit tests")
"""
HINT = 2
AUTO = {"FEATURE_PRD_AUTO_APPROVE_REVIEW": "true"}


async def test_an_imported_graph_runs_in_waves_within_the_hint(
    engine: Engine, settings: Settings, store: EventStore, keys: Keys
) -> None:
    request = ImportRequest.model_validate({
        "project": "waves", "source": PRD, "granularity": "fine", "auto_ready": True,
        "max_parallelism_hint": HINT, "spec": {"type": "noop", "payload": {"sleepMs": 300}},
    })  # fmt: skip
    result, previewed = await commit_import(store, request, Flags(), actor="test")
    ids = list(previewed.task_ids.values())
    assert len(ids) == 8
    engine.projector()
    engine.scheduler(**AUTO)
    engine.worker("w1", "noop", concurrency=2, FEATURE_PRD_AUTO_APPROVE_REVIEW="true")
    engine.worker("w2", "noop", concurrency=2, FEATURE_PRD_AUTO_APPROVE_REVIEW="true")

    async def all_done() -> bool:
        return all(t.status == "done" for t in (await load_tasks(store, ids)).values())

    await wait_for(all_done, timeout=60, what="every imported task done")
    blockers = {t.id: t.blocked_by for t in (await load_tasks(store, ids)).values()}
    status: dict[str, str] = {}
    done: set[str] = set()
    widest = 0
    for e in await log_events(store, keys):
        if e.type != "task.transitioned" or e.agg not in blockers:
            continue
        status[e.agg] = e.data["to_status"]
        if e.data["to_status"] in ("ready", "in_progress"):
            assert set(blockers[e.agg]) <= done, f"{e.agg} started before its blockers"
        if e.data["to_status"] == "done":
            done.add(e.agg)
        widest = max(widest, sum(1 for s in status.values() if s in ("ready", "in_progress")))
    assert widest == HINT  # the hint was used, and never passed
    assert done == set(ids)
    assert result.written > 8
