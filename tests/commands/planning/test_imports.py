"""PRD import on the real store: a preview writes nothing, a commit writes the import and its
tasks and edges once, a re-import of an edited document updates the tasks in place."""

from __future__ import annotations

import pytest

from cairn.commands.planning.imports import (
    commit_import,
    load_import,
    preview_import,
    recall_preview,
)
from cairn.commands.tasks.task import load_tasks, transition_task
from cairn.domain.errors import NotFound, ValidationFailed, VersionConflict
from cairn.domain.planning.preview import ImportRequest
from cairn.domain.tasks.states import Flags
from cairn.streams.store import EventStore
from tests.domain.planning.prd_samples import ACCOUNTS, ACCOUNTS_EDITED

FLAGS = Flags()


def request(source: str = ACCOUNTS, **fields: object) -> ImportRequest:
    return ImportRequest.model_validate({"project": "acme", "source": source, **fields})


async def log_length(store: EventStore) -> int:
    return sum([await store.redis.xlen(store.keys.log(p)) for p in store.keys.all_partitions()])


async def test_a_preview_writes_no_event_and_can_be_recalled(store: EventStore) -> None:
    previewed = await preview_import(store, request(granularity="fine"))
    view = previewed.view()
    assert await log_length(store) == 0
    assert view["counts"]["tasks"] == len(view["tasks"]) > 5
    assert await recall_preview(store, previewed.preview_id) == previewed.request
    with pytest.raises(NotFound):
        await recall_preview(store, "preview-01-" + "0" * 26)


async def test_commit_twice_creates_the_tasks_once(store: EventStore) -> None:
    first, previewed = await commit_import(store, request(), FLAGS, actor="t")
    written = await log_length(store)
    again, _ = await commit_import(store, request(), FLAGS, actor="t",
                                   preview_id=previewed.preview_id)  # fmt: skip
    assert again.duplicate and await log_length(store) == written
    state = await load_import(store, first.id)
    assert state is not None and state.revision == 1
    tasks = await load_tasks(store, state.created_task_ids)
    assert len(tasks) == len(previewed.plan.graph.tasks) == len(state.created_task_ids)
    by_key = {t.key: t.task_id for t in state.tasks.values()}
    for planned in previewed.plan.graph.tasks:
        task = tasks[by_key[planned.key]]
        assert task.title == planned.title and task.source == "prd_import"
        assert task.blocked_by == [by_key[k] for k in planned.depends_on]
        assert task.project == "acme" and task.status == "backlog"


async def test_an_edited_prd_updates_in_place_and_the_preview_showed_the_diff(
    store: EventStore,
) -> None:
    _, first = await commit_import(store, request(granularity="fine"), FLAGS, actor="t")
    previewed = await preview_import(store, request(ACCOUNTS_EDITED, granularity="fine"))
    changes = previewed.view()["diff"]
    assert changes["added"] == ["s1/3"]
    assert [r["key"] for r in changes["removed"]] == ["s2.2/3"]
    renamed = next(u for u in changes["updated"] if u["key"] == "s1/1")
    assert renamed["changes"]["title"]["to"].startswith("Users table with email, display name")
    assert await log_length(store) > 0
    result, _ = await commit_import(store, request(ACCOUNTS_EDITED, granularity="fine"), FLAGS,
                                    actor="t", preview_id=previewed.preview_id)  # fmt: skip
    state = await load_import(store, result.id)
    assert state is not None and state.revision == 2
    renamed_task = (await load_tasks(store, [renamed["task_id"]]))[renamed["task_id"]]
    assert renamed_task.title.startswith("Users table with email, display name")
    assert renamed_task.id == first.task_ids["s1/1"]
    removed = changes["removed"][0]["task_id"]
    assert (await load_tasks(store, [removed]))[removed].status == "backlog"  # reported only
    audit = state.tasks["s1/3"].task_id
    assert (await load_tasks(store, [audit]))[audit].blocked_by == [first.task_ids["s1/2"]]


async def test_removed_items_are_cancelled_only_when_asked(store: EventStore) -> None:
    await commit_import(store, request(granularity="fine"), FLAGS, actor="t")
    edited = request(ACCOUNTS_EDITED, granularity="fine", cancel_removed=True)
    result, previewed = await commit_import(store, edited, FLAGS, actor="t")
    gone = previewed.changes.removed[0].task_id
    assert (await load_tasks(store, [gone]))[gone].status == "cancelled"
    state = await load_import(store, result.id)
    assert state is not None and state.last["cancelled"] == [gone]


async def test_a_stale_preview_is_refused(store: EventStore) -> None:
    previewed = await preview_import(store, request())
    await commit_import(store, request(ACCOUNTS_EDITED), FLAGS, actor="t")
    with pytest.raises(VersionConflict):
        await commit_import(store, request(), FLAGS, actor="t", preview_id=previewed.preview_id)


async def test_bad_input_appends_nothing(store: EventStore) -> None:
    with pytest.raises(ValidationFailed) as empty:
        await commit_import(store, request("## Overview\nSome context.\n"), FLAGS, actor="t")
    assert empty.value.errors[0]["path"] == "source"
    cyclic = {"tasks": [{"key": "a", "title": "A", "depends_on": ["b"]},
                        {"key": "b", "title": "B", "depends_on": ["a"]}]}  # fmt: skip
    with pytest.raises(ValidationFailed) as cycle:
        await commit_import(store, request("", plan=cyclic), FLAGS, actor="t")
    assert cycle.value.errors[0]["path"].startswith("plan.tasks[")
    assert await log_length(store) == 0


async def test_a_moved_task_is_kept_by_a_reimport(store: EventStore) -> None:
    _result, previewed = await commit_import(store, request(), FLAGS, actor="t")
    root = previewed.task_ids[previewed.plan.graph.roots[0]]
    await transition_task(store, root, "ready", FLAGS, actor="t")
    await commit_import(store, request(ACCOUNTS_EDITED), FLAGS, actor="t")
    assert (await load_tasks(store, [root]))[root].status == "ready"
