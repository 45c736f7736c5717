"""Projects over HTTP: a project with settings, set and cleared; a project known only by its
tasks keeps working and can be given settings; a task's run takes its project's repository and
runtime where it names none; bad settings are problem+json naming the field and write nothing."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from cairn.commands.settings import Settings
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore


async def log_length(store: EventStore, keys: Keys) -> int:
    return sum([await store.redis.xlen(keys.log(p)) for p in keys.all_partitions()])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, execution=replace(settings.execution, allow_local_repositories=True))


async def test_create_read_set_and_clear_a_projects_settings(api: httpx.AsyncClient) -> None:
    made = await api.post("/api/v2/projects/shop", json={"repository": "acme/shop",
                                                         "runtime": "claude"})  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["project"] == "shop" and body["settings"]["repository"] == "acme/shop"
    assert body["settings"]["model"] is None and body["total"] == 0
    again = await api.post("/api/v2/projects/shop", json={})
    assert again.status_code == 409 and "PATCH /api/v2/projects/shop" in again.json()["detail"]
    changed = await api.patch("/api/v2/projects/shop", json={"runtime": None, "model": "opus"})
    assert changed.status_code == 200, changed.text
    shown = changed.json()["settings"]
    assert (shown["runtime"], shown["model"], shown["repository"]) == (None, "opus", "acme/shop")
    listed = (await api.get("/api/v2/projects")).json()["projects"]
    assert [p["project"] for p in listed] == ["shop"]


async def test_a_project_known_only_by_its_tasks_is_listed_and_takes_settings(
    api: httpx.AsyncClient,
) -> None:
    task = {"title": "Pay", "task_type": "feature", "priority": "high", "project": "billing"}
    made = await api.post("/api/v2/tasks", json=task)
    assert made.status_code in (201, 202)
    shown = (await api.get("/api/v2/projects/billing")).json()
    assert shown["settings"]["repository"] is None and shown["total"] == 1
    set_ = await api.patch("/api/v2/projects/billing", json={"publish_mode": "branch"})
    assert set_.json()["settings"]["publish_mode"] == "branch" and set_.json()["total"] == 1
    assert (await api.get("/api/v2/projects/nothing-here")).status_code == 404


@pytest.mark.parametrize(("body", "path"), [
    ({"repository": "no such form"}, "body.repository"),
    ({"runtime": "aider"}, "body.runtime"),
    ({"publish_mode": "push"}, "body.publish_mode"),
    ({"concurrency": -2}, "body.concurrency"),
    ({"default_branch": "bad..branch"}, "body.default_branch"),
    ({"colour": "red"}, "body.colour"),
    ([1, 2], "body"),
])  # fmt: skip
async def test_bad_settings_are_refused_naming_the_field_and_write_nothing(
    api: httpx.AsyncClient, store: EventStore, keys: Keys, body: object, path: str
) -> None:
    before = await log_length(store, keys)
    refused = await api.patch("/api/v2/projects/shop", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert path in {e["path"] for e in refused.json()["errors"]}
    assert await log_length(store, keys) == before


async def test_a_bad_name_is_404_naming_the_rule(api: httpx.AsyncClient) -> None:
    refused = await api.get("/api/v2/projects/-nope")
    assert refused.status_code == 404 and "not a project name" in refused.json()["detail"]


async def test_a_tasks_run_takes_its_projects_repository_and_runtime(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/api/v2/projects/web", json={"repository": "/srv/git/web.git",
                                                 "runtime": "gemini", "publish_mode": "branch",
                                                 "model": "gemini-2.5-pro"})  # fmt: skip
    task = (await api.post("/api/v2/tasks", json={
        "title": "Fix the header", "task_type": "bug_fix", "priority": "medium",
        "project": "web"})).json()  # fmt: skip
    ran = await api.post(f"/api/v2/tasks/{task['id']}/run")
    assert ran.status_code in (200, 201, 202), ran.text
    job = (await api.get(f"/api/queue/jobs/{ran.json()['job_id']}")).json()
    normalized = job["normalized"]
    assert normalized["repository"] == "/srv/git/web.git"
    assert normalized["targetRuntime"] == "gemini"
    assert normalized["task"]["runtime"]["model"] == "gemini-2.5-pro"
    assert normalized["task"]["publish"]["mode"] == "branch"
    # The task's own value wins over the project's.
    own = (await api.post("/api/v2/tasks", json={
        "title": "Elsewhere", "task_type": "chore", "priority": "low", "project": "web",
        "spec": {"repository": "/srv/git/other.git", "task": {"instructions": "x"}}})).json()
    ran = await api.post(f"/api/v2/tasks/{own['id']}/run")
    job = (await api.get(f"/api/queue/jobs/{ran.json()['job_id']}")).json()
    assert job["normalized"]["repository"] == "/srv/git/other.git"
    assert job["normalized"]["targetRuntime"] == "gemini"
