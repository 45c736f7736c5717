"""Schedules over HTTP: create, list, read, pause, resume, run now, delete; bad input (a cron of
nonsense, a time zone that is none, a template input of the wrong type, a job that would not
run) is problem+json naming the field and appends nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from cairn.streams.keys import Keys
from cairn.streams.store import EventStore

NOOP = {"project": "ops", "name": "heartbeat", "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin", "job": {"type": "noop"}}  # fmt: skip


async def log_length(store: EventStore, keys: Keys) -> int:
    return sum([await store.redis.xlen(keys.log(p)) for p in keys.all_partitions()])


async def test_a_schedule_through_its_life(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/schedules", json=NOOP, headers={"Idempotency-Key": "hb-1"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "active" and body["enabled"] and body["next_fire_at"]
    assert body["next_fire_at"].endswith(":00Z") and int(body["next_fire_at"][14:16]) % 5 == 0
    again = await api.post("/api/schedules", json=NOOP, headers={"Idempotency-Key": "hb-1"})
    assert again.json()["id"] == body["id"]
    one = f"/api/schedules/{body['id']}"
    paused = await api.post(one + "/pause")
    assert paused.json()["status"] == "paused" and paused.json()["next_fire_at"] is None
    run = await api.post(one + "/run", headers={"Idempotency-Key": "now-1"})
    assert run.status_code == 201 and run.json()["job_id"].startswith("job-")
    rerun = await api.post(one + "/run", headers={"Idempotency-Key": "now-1"})
    assert rerun.status_code == 200 and rerun.json()["job_id"] == run.json()["job_id"]
    job: dict[str, Any] = {}
    for _ in range(100):  # the queue read model follows
        job = (await api.get(f"/api/queue/jobs/{run.json()['job_id']}")).json()
        if job.get("status") == "queued":
            break
        await asyncio.sleep(0.05)
    assert job["type"] == "noop" and job["project"] == "ops"
    resumed = await api.post(one + "/resume")
    assert resumed.json()["status"] == "active" and resumed.json()["next_fire_at"]
    listed = (await api.get("/api/schedules", params={"project": "ops"})).json()["items"]
    assert [s["id"] for s in listed] == [body["id"]] and listed[0]["fire_count"] == 1
    deleted = await api.delete(one)
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert (await api.post(one + "/run")).status_code == 409
    assert (await api.post(one + "/resume")).status_code == 409
    gone = (await api.get("/api/schedules", params={"status": "deleted"})).json()["items"]
    assert [s["id"] for s in gone] == [body["id"]]
    assert (await api.get("/api/schedules/schedule-01-" + "0" * 26)).status_code == 404
    assert (await api.get("/api/schedules/not-an-id")).status_code == 404


async def test_bad_input_names_the_field_and_appends_nothing(
    api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    template = {"slug": "bump", "title": "Bump", "inputs": [{"name": "count", "type": "integer"}],
                "steps": [{"id": "go", "title": "Bump {{count}}", "instructions": "bump"}]}
    assert (await api.post("/api/templates", json=template)).status_code == 201
    before = await log_length(store, keys)
    no_job = {k: v for k, v in NOOP.items() if k != "job"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**NOOP, "cron": "every minute please"}, "cron"),
        ({**NOOP, "cron": "61 * * * *"}, "cron"),
        ({**NOOP, "timezone": "Mars/Olympus"}, "timezone"),
        ({**no_job, "template": "bump", "inputs": {"count": "three"}}, "inputs.count"),
        ({**no_job, "template": "bump", "inputs": {"count": 1, "extra": 2}}, "inputs.extra"),
        ({**NOOP, "job": {"type": "noop", "payload": {"sleepMs": "long"}}},
         "job.payload.sleepMs"),
        (no_job, "job"),
        ({**NOOP, "enabled": "sometimes"}, "enabled"),
    ]  # fmt: skip
    for body, path in cases:
        bad = await api.post("/api/schedules", json=body)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.headers["content-type"] == "application/problem+json"
        assert path in [e["path"] for e in bad.json()["errors"]], (path, bad.json())
    assert await log_length(store, keys) == before
