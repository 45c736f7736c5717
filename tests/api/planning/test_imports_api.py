"""PRD import over HTTP: preview writes nothing, commit by preview id twice creates the tasks
once, the import's state reads back; bad input is problem+json naming the field."""

from __future__ import annotations

import httpx

from cairn.streams.store import EventStore
from tests.domain.planning.prd_samples import ACCOUNTS, ACCOUNTS_EDITED


async def log_length(store: EventStore) -> int:
    return sum([await store.redis.xlen(store.keys.log(p)) for p in store.keys.all_partitions()])


async def test_preview_then_commit_twice_then_read(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    body = {"project": "acme", "source": ACCOUNTS, "granularity": "fine"}
    preview = await api.post("/api/v2/import/prd/preview", json=body)
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert await log_length(store) == 0
    keys = {t["key"] for t in shown["tasks"]}
    assert all(e["task"] in keys and e["blocked_by"] in keys for e in shown["edges"])
    assert all(len(w) <= 4 for w in shown["waves"])
    first = await api.post("/api/v2/import/prd/commit", json={"preview_id": shown["preview_id"]})
    assert first.status_code == 201, first.text
    written = await log_length(store)
    again = await api.post("/api/v2/import/prd/commit", json={"preview_id": shown["preview_id"]})
    assert again.status_code == 200 and await log_length(store) == written
    state = (await api.get(f"/api/v2/import/{first.json()['id']}")).json()
    assert state["status"] == "committed" and state["task_count"] == len(shown["tasks"])
    assert len(state["created_task_ids"]) == len(shown["tasks"])
    assert state["edge_count"] == len(shown["edges"])
    edited = await api.post("/api/v2/import/prd/preview", json={**body, "source": ACCOUNTS_EDITED})
    assert edited.json()["diff"]["added"] == ["s1/3"]


async def test_granularity_grows_the_task_count(api: httpx.AsyncClient) -> None:
    counts = []
    for granularity in ("coarse", "balanced", "fine"):
        body = {"source": ACCOUNTS, "granularity": granularity}
        counts.append(
            len((await api.post("/api/v2/import/prd/preview", json=body)).json()["tasks"])
        )
    assert counts[0] < counts[1] < counts[2]


async def test_bad_input_names_the_field_and_appends_nothing(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    huge = await api.post("/api/v2/import/prd/preview",
                          content=b'{"source": "' + b"x" * 5_000_000 + b'"}')  # fmt: skip
    assert huge.status_code == 413
    assert huge.headers["content-type"] == "application/problem+json"
    assert huge.json()["errors"][0]["path"] == "source"
    cyclic = {"tasks": [{"key": "a", "title": "A", "depends_on": ["b"]},
                        {"key": "b", "title": "B", "depends_on": ["a"]}]}  # fmt: skip
    refused = await api.post("/api/v2/import/prd/commit", json={"plan": cyclic})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] in ("plan.tasks[0].depends_on[0]",
                                                   "plan.tasks[1].depends_on[0]")  # fmt: skip
    wrong = await api.post("/api/v2/import/prd/preview", json={"source": ACCOUNTS,
                                                               "granularity": "huge"})  # fmt: skip
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["path"] == "granularity"
    for shows_nothing in ("\u0019", " \t\n", "\u200b\u00a0"):  # as the schema's pattern says
        empty = await api.post("/api/v2/import/prd/preview", json={"source": shows_nothing})
        assert empty.status_code == 422 and empty.json()["errors"][0]["path"] == "source"
    missing = await api.get("/api/v2/import/import-01-" + "0" * 26)
    assert missing.status_code == 404
    assert await log_length(store) == 0


async def test_the_routes_are_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "requestBody" in paths["/api/v2/import/prd/preview"]["post"]
    assert "requestBody" in paths["/api/v2/import/prd/commit"]["post"]
    assert "200" in paths["/api/v2/import/{import_id}"]["get"]["responses"]
