"""The orchestrator's API without a worker: the catalog's writes by role, runs in line, their
list with filters and a cursor, and every mistake a clear error that changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio as aioredis

from cairn.api.auth import store_token
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore

SPEC: dict[str, Any] = {
    "name": "billing", "repository": "acme/billing", "allowedPaths": ["app/**"],
    "build": {"run": "make"}, "restart": {"run": "./restart"},
    "verify": {"http": {"url": "http://127.0.0.1:9/health"}},
}  # fmt: skip


async def tokens(client: aioredis.Redis, keys: Keys) -> dict[str, dict[str, str]]:
    found = {}
    for role in ("viewer", "operator"):
        token = f"{role}-Token-0123456789abcdefghijklmn"
        await store_token(client, keys, token, role, role)
        found[role] = {"Authorization": f"Bearer {token}"}
    return found


async def log_size(store: EventStore, keys: Keys) -> int:
    return sum([len(await store.read_log(p, "0-0", count=10_000)) for p in keys.all_partitions()])


async def test_the_catalog_is_written_by_admins_and_read_by_everyone(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys
) -> None:
    who = await tokens(client, keys)
    assert (await api.post("/api/orchestrator/services", headers=who["operator"],
                           json=SPEC)).status_code == 403  # fmt: skip
    created = await api.post("/api/orchestrator/services", json=SPEC)
    assert created.status_code == 201 and created.json()["spec"]["branch"] == "main"
    again = await api.post("/api/orchestrator/services", json=SPEC)
    assert again.status_code == 409 and "PUT replaces" in again.json()["detail"]
    changed = await api.put("/api/orchestrator/services/billing", json={**SPEC, "protected": True})
    assert changed.status_code == 200 and changed.json()["spec"]["protected"] is True
    listed = await api.get("/api/orchestrator/services", headers=who["viewer"])
    assert [s["name"] for s in listed.json()["items"]] == ["billing"]
    renamed = await api.put("/api/orchestrator/services/billing", json={**SPEC, "name": "other"})
    assert renamed.status_code == 422 and renamed.json()["errors"][0]["path"] == "name"


async def test_bad_input_is_refused_with_its_field_and_appends_nothing(
    api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    assert (await api.post("/api/orchestrator/services", json=SPEC)).status_code == 201
    before = await log_size(store, keys)
    cases = [
        ("/api/orchestrator/services", {**SPEC, "name": "two", "allowedPaths": ["../etc"]},
         "allowedPaths"),
        ("/api/orchestrator/services", {**SPEC, "name": "three", "verify": {"run": "x",
         "http": {"url": "http://x/"}}}, "verify"),
        ("/api/orchestrator/services", {**SPEC, "name": "four", "build": None}, ""),
        ("/api/orchestrator/runs", {"service": "billing", "instruction": "x",
                                    "runtime": "shell"}, "runtime"),
        ("/api/orchestrator/runs", {"service": "billing", "instruction": "x",
                                    "approval": "maybe"}, "approval"),
    ]  # fmt: skip
    for url, body, path in cases:
        reply = await api.post(url, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert path in [e["path"] for e in reply.json()["errors"]], reply.json()
    missing = await api.post("/api/orchestrator/runs", json={"service": "nope", "instruction": "x"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert await log_size(store, keys) == before


async def test_runs_wait_in_line_and_list_with_filters_and_a_cursor(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys
) -> None:
    who = await tokens(client, keys)
    assert (await api.post("/api/orchestrator/services", json=SPEC)).status_code == 201
    assert (await api.post("/api/orchestrator/runs", headers=who["viewer"],
                           json={"service": "billing", "instruction": "x"})).status_code == 403
    ids = []
    for i in range(3):
        reply = await api.post("/api/orchestrator/runs", headers=who["operator"],
                               json={"service": "billing", "instruction": f"fix {i}",
                                     "runtime": "claude"})  # fmt: skip
        assert reply.status_code == 201, reply.text
        ids.append(reply.json()["id"])
    first, second, third = [(await api.get(f"/api/orchestrator/runs/{i}")).json() for i in ids]
    assert first["planJob"] and first["waitingBehind"] is None
    assert second["waitingBehind"] == ids[0] and third["waitingBehind"] == ids[1]
    held = (await api.get("/api/orchestrator/services/billing")).json()
    assert held["holder"] == ids[0] and held["waiting"] == ids[1:]
    refused = await api.delete("/api/orchestrator/services/billing")
    assert refused.status_code == 409
    page = (await api.get("/api/orchestrator/runs", params={"limit": 2})).json()
    assert [r["id"] for r in page["items"]] == ids[:0:-1] and page["nextCursor"]
    rest = (await api.get("/api/orchestrator/runs",
                          params={"limit": 2, "cursor": page["nextCursor"]})).json()  # fmt: skip
    assert [r["id"] for r in rest["items"]] == [ids[0]] and rest["nextCursor"] is None
    bad = await api.get("/api/orchestrator/runs", params={"state": "sleeping"})
    assert bad.status_code == 422
    not_yet = await api.post(f"/api/orchestrator/runs/{ids[1]}/approve")
    assert not_yet.status_code == 409 and "awaiting approval" in not_yet.json()["detail"]
    no_reason = await api.post(f"/api/orchestrator/runs/{ids[1]}/reject", json={})
    assert no_reason.status_code == 422

    # A cancel of a waiting run ends it at once and it leaves the line; the first one's cancel
    # reaches its queued plan job, and the next in line takes the service.
    assert (await api.post(f"/api/orchestrator/runs/{ids[1]}/cancel")).status_code == 202
    assert (await api.get(f"/api/orchestrator/runs/{ids[1]}")).json()["state"] == "cancelled"
    assert (await api.post(f"/api/orchestrator/runs/{ids[0]}/cancel")).status_code == 202
    shown = (await api.get(f"/api/orchestrator/runs/{ids[0]}")).json()
    assert shown["state"] == "cancelled", shown
    moved = (await api.get("/api/orchestrator/services/billing")).json()
    assert moved["holder"] == ids[2] and moved["waiting"] == []
    again = await api.post(f"/api/orchestrator/runs/{ids[0]}/cancel")
    assert again.status_code == 409
    events = (await api.get(f"/api/orchestrator/runs/{ids[0]}/events")).json()["items"]
    assert [e["type"] for e in events if e["aggregate"] == ids[0]][-1] == "orun.finished"
    filtered = (await api.get("/api/orchestrator/runs", params={"state": "cancelled"})).json()
    assert {r["id"] for r in filtered["items"]} == set(ids[:2])
