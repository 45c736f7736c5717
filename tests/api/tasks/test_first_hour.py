"""What a newcomer met in the first hour, each once wrong: a refusal that showed an enum's repr,
`can_move_to_ready` false for a task that can move there, a refusal naming ids and not titles,
events without the request's correlation id."""

from __future__ import annotations

import httpx

from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.api.tasks.test_tasks_api import create


async def test_a_refused_move_names_the_status_as_a_person_writes_it(
    api: httpx.AsyncClient,
) -> None:
    task = await create(api, title="Ship it")
    refused = await api.post(f"/api/v2/tasks/{task['id']}/transition", json={"to": "done"})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "cannot move to 'done'" in detail and "Status." not in detail, detail


async def test_can_move_to_ready_says_whether_the_move_would_be_taken(
    api: httpx.AsyncClient,
) -> None:
    free = await create(api, title="Free")
    blocker = await create(api, title="First things first")
    waiting = await create(api, title="Waits", blocked_by=[blocker["id"]])
    board = (await api.get("/api/v2/tasks/board", params={"project": "default"})).json()
    cards = {c["id"]: c for column in board["columns"] for c in column["cards"]}
    assert cards[free["id"]]["can_move_to_ready"] is True
    assert cards[waiting["id"]]["can_move_to_ready"] is False
    done = await api.post(f"/api/v2/tasks/{free['id']}/transition", json={"to": "ready"})
    assert done.status_code == 200, done.text


async def test_a_refusal_for_open_blockers_names_their_titles(api: httpx.AsyncClient) -> None:
    blocker = await create(api, title="Design the schema")
    waiting = await create(api, title="Write the migration", blocked_by=[blocker["id"]])
    refused = await api.post(f"/api/v2/tasks/{waiting['id']}/transition", json={"to": "ready"})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "'Write the migration'" in detail and "'Design the schema' is backlog" in detail
    assert blocker["id"] not in detail  # the id stays in the details, for scripts
    assert refused.json()["blockers"][0]["id"] == blocker["id"]


async def test_events_carry_the_correlation_id_the_response_gives(
    api: httpx.AsyncClient, store: EventStore, keys: Keys,
) -> None:  # fmt: skip
    made = await api.post("/api/v2/tasks", json={"title": "Traced", "task_type": "chore",
                                                 "priority": "low"},
                          headers={"X-Correlation-Id": "req-7f3a"})  # fmt: skip
    assert made.headers["x-correlation-id"] == "req-7f3a"
    [event] = await store.read_aggregate(made.json()["id"])
    assert event.corr == "req-7f3a"
    mine = await api.post("/api/v2/tasks", json={"title": "Untraced", "task_type": "chore",
                                                 "priority": "low"})  # fmt: skip
    [event] = await store.read_aggregate(mine.json()["id"])
    assert event.corr == mine.headers["x-correlation-id"] != ""
