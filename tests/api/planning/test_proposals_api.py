"""Proposals end to end: a fake agent writes two proposals, one a duplicate of an open one
(one new proposal, one merge); promote twice makes one task; dismissed ones leave the open
list; bad entries are reported, never raised."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec

from cairn.commands.jobs.job import JobRequest, load_job, submit_job
from cairn.commands.planning.proposals import PROPOSALS_FILE, submit_proposals_from_file
from cairn.commands.settings import Settings
from cairn.streams.store import EventStore


async def test_agent_proposals_merge_promote_and_dismiss(
    api: httpx.AsyncClient, store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    first = await api.post("/api/proposals", json={
        "project": "acme", "title": "Add rate limiting", "dedup_key": "rate-limit",
        "review_priority": "high", "task": {"task_type": "feature", "priority": "high"},
    })  # fmt: skip
    assert first.status_code == 201, first.text
    payload = {"repository": "acme/app", "task": {"instructions": "x", "proposeTasks": True,
                                                  "publish": {"mode": "none"}}}  # fmt: skip
    job_id = (await submit_job(store, JobRequest("task", payload, project="acme"),
                               settings.contract(), actor="t")).id  # fmt: skip
    job = msgspec.structs.replace(await load_job(store, job_id), status="succeeded")
    (tmp_path / ".cairn").mkdir()
    (tmp_path / PROPOSALS_FILE).write_text(json.dumps({"proposals": [
        {"title": "Rate limit the login route", "dedup_key": "rate-limit"},
        {"title": "Write the runbook", "task": {"task_type": "docs"}},
        {"title": "", "review_priority": "someday"},
    ]}))  # fmt: skip
    report = await submit_proposals_from_file(store, job, tmp_path)
    assert report["merged"] == [first.json()["id"]] and len(report["submitted"]) == 1
    assert {e["path"] for e in report["rejected"][0]["errors"]} == {
        "proposals[2].title", "proposals[2].review_priority"}  # fmt: skip
    merged: dict[str, Any] = {}
    for _ in range(100):  # the read model follows the commands above
        merged = (await api.get(f"/api/proposals/{first.json()['id']}")).json()
        if merged["count"] == 2:
            break
        await asyncio.sleep(0.05)
    assert merged["count"] == 2 and merged["origins"][1]["job_id"] == job_id
    assert merged["origins"][1]["repository"] == "acme/app"
    await asyncio.sleep(0.3)
    listed = (await api.get("/api/proposals", params={"project": "acme"})).json()["items"]
    assert [p["title"] for p in listed] == ["Add rate limiting", "Write the runbook"]
    url = f"/api/proposals/{first.json()['id']}/promote"
    once, twice = await api.post(url, json={}), await api.post(url, json={})
    assert once.status_code == 201 and twice.status_code == 200
    assert once.json()["promoted_to"] == twice.json()["promoted_to"]
    task_id = once.json()["promoted_to"]["id"]
    task = (await api.get(f"/api/v2/tasks/{task_id}")).json()
    assert task["priority"] == 2 and task["source"] == "generated"
    runbook = report["submitted"][0]
    dismissed = await api.post(f"/api/proposals/{runbook}/dismiss", json={"reason": "dup"})
    assert dismissed.json()["status"] == "dismissed"
    assert (await api.get("/api/proposals", params={"project": "acme"})).json()["items"] == []
    gone = (await api.get("/api/proposals", params={"status": "dismissed"})).json()["items"]
    assert [p["id"] for p in gone] == [runbook]
    again = await api.post("/api/proposals", json={"project": "acme", "title": "Limit again",
                                                   "dedup_key": "rate-limit"})  # fmt: skip
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]


async def test_bad_input_names_the_field(api: httpx.AsyncClient) -> None:
    bad = await api.post("/api/proposals", json={"title": "x", "review_priority": "someday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "review_priority"
    missing = await api.post("/api/proposals/proposal-01-" + "0" * 26 + "/promote", json={})
    assert missing.status_code == 404
