"""Workers, pause, missing capabilities and task runs through the API (no worker processes:
the registry is written as a worker would)."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from cairn.streams.keys import Keys
from cairn.streams.registry import Registry

PAYLOAD = {"repository": "acme/app", "targetRuntime": "gemini",
           "task": {"instructions": "x", "publish": {"mode": "none"}}}  # fmt: skip


async def test_queued_job_says_which_capability_is_missing(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys
) -> None:
    registry = Registry(client, keys)
    await registry.beat({"id": "w1", "capabilities": ["claude", "git"], "concurrency": 1})
    r = await api.post("/api/queue/jobs", json={"type": "task", "payload": PAYLOAD})
    job = (await api.get(f"/api/queue/jobs/{r.json()['id']}")).json()
    assert job["missingCapabilities"] == ["gemini"]
    await registry.beat({"id": "w2", "capabilities": ["gemini", "git"], "concurrency": 1})
    job = (await api.get(f"/api/queue/jobs/{r.json()['id']}")).json()
    assert job["missingCapabilities"] is None
    workers = (await api.get("/api/queue/workers")).json()
    assert [w["id"] for w in workers["workers"]] == ["w1", "w2"] and workers["pause"] == "off"


async def test_a_negative_sleep_is_refused_with_its_path(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/queue/jobs", json={"type": "noop", "payload": {"sleepMs": -1}})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "payload.sleepMs"


async def test_worker_pause_modes(api: httpx.AsyncClient) -> None:
    for mode in ("drain", "quiesce", "off"):
        body = {"mode": mode, "reason": f"release {mode}"}
        r = await api.post("/api/system/worker-pause", json=body)
        assert r.status_code == 200 and r.json() == body
        state = (await api.get("/api/queue/workers")).json()["pauseState"]
        assert (state["mode"], state["reason"]) == (mode, f"release {mode}")
        assert state["actor"] == "admin"
    r = await api.post("/api/system/worker-pause", json={"mode": "sleep", "reason": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "mode"
    for missing in ({"mode": "drain"}, {"mode": "drain", "reason": "  "}):
        r = await api.post("/api/system/worker-pause", json=missing)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "reason"
    assert (await api.get("/api/queue/workers")).json()["pause"] == "off"


async def test_run_now_retry_and_cancel(api: httpx.AsyncClient) -> None:
    body = {"title": "Ship it", "task_type": "feature", "priority": 2,
            "spec": {"type": "task", "payload": PAYLOAD}}  # fmt: skip
    task = (await api.post("/api/v2/tasks", json=body)).json()
    first = await api.post(f"/api/v2/tasks/{task['id']}/run")
    again = await api.post(f"/api/v2/tasks/{task['id']}/run")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["job_id"] == again.json()["job_id"]
    job_id = first.json()["job_id"]
    card = (await api.get(f"/api/v2/tasks/{task['id']}")).json()
    assert card["status"] == "ready" and card["active_job_id"] == job_id
    events = (await api.get(f"/api/v2/tasks/{task['id']}/events")).json()["events"]
    moved = next(e for e in events if e["type"] == "task.transitioned")
    assert moved["data"]["reason"] == "run now" and moved["actor"] == "admin"
    job = (await api.get(f"/api/queue/jobs/{job_id}")).json()
    assert job["source"] == "board" and job["taskId"] == task["id"]
    r = await api.post(f"/api/v2/tasks/{task['id']}/retry")
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    r = await api.post(f"/api/v2/tasks/{task['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["active_job_id"] is None
    job = (await api.get(f"/api/queue/jobs/{job_id}")).json()
    assert job["status"] == "cancelled"


async def test_run_now_with_a_bad_spec_is_refused_with_the_path(api: httpx.AsyncClient) -> None:
    body = {"title": "No repo", "task_type": "chore", "priority": 0}
    task = (await api.post("/api/v2/tasks", json=body)).json()
    r = await api.post(f"/api/v2/tasks/{task['id']}/run")
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "payload.repository"
    card = (await api.get(f"/api/v2/tasks/{task['id']}")).json()
    assert card["status"] == "backlog" and card["run_ids"] == []
