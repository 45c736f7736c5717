"""A job's run through the API on a real server with the projectors running: live output (a
page and SSE), artifacts (listed and downloaded, nothing outside the job's folder), pause and
resume, operator messages, and the execution detail of the job view."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.commands.jobs.claims import claim_job, write_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.events import (
    JobArtifactAdded,
    JobBranchResolved,
    JobEvent,
    JobPublished,
    JobStepFinished,
    JobStepStarted,
    JobSucceeded,
)
from cairn.domain.jobs.job import Job
from cairn.domain.tasks.states import Flags
from cairn.streams.artifacts import FileArtifactStore, StoredArtifact
from cairn.streams.output import OutputChunk, OutputStream
from cairn.streams.store import EventStore

PAYLOAD = {"repository": "acme/app", "targetRuntime": "claude",
           "task": {"instructions": "Fix the flaky test"}}  # fmt: skip
PROBLEM = "application/problem+json"


async def submit(api: httpx.AsyncClient) -> str:
    r = await api.post("/api/queue/jobs", json={"type": "task", "payload": PAYLOAD})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def eventually(read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool]) -> Any:
    """What `read` gives once `ok` holds (the projector applies writes made outside the API)."""
    for _ in range(100):
        value = await read()
        if ok(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never held: {value!r}")


async def job_when(api: httpx.AsyncClient, job_id: str, ok: Callable[[Any], bool]) -> Any:
    async def read() -> Any:
        return (await api.get(f"/api/queue/jobs/{job_id}")).json()

    return await eventually(read, ok)


async def running(store: EventStore, job_id: str) -> Job:
    return await claim_job(store, job_id, "w1", Flags())


async def report(store: EventStore, job_id: str, events: Callable[[Job], list[JobEvent]]) -> Job:
    """Append what a worker holding the job would."""
    return await write_job(store, job_id, events, Flags(), actor="w1")


def artifacts_of(settings: Settings) -> FileArtifactStore:
    return FileArtifactStore(settings.data_dir / "artifacts", settings.execution.artifact_max_bytes)


def added(job: Job, stored: StoredArtifact) -> JobArtifactAdded:
    return JobArtifactAdded(
        epoch=job.epoch, name=stored.name, ref="artifact", path=stored.path, size=stored.size,
        sha256=stored.sha256, content_type=stored.content_type, truncated=stored.truncated,
    )  # fmt: skip


# ---- live output -------------------------------------------------------------------------


async def test_output_pages_after_an_entry_id(api: httpx.AsyncClient, store: EventStore) -> None:
    job_id = await submit(api)
    output = OutputStream(store.redis, store.keys)
    await output.append(job_id, [OutputChunk(f"line {i}\n", step=1) for i in range(5)])
    await output.append(job_id, [OutputChunk("warning\n", step=2, stream="err")])
    url = f"/api/queue/jobs/{job_id}/output"
    page = (await api.get(url, params={"limit": 4})).json()
    assert [i["text"] for i in page["items"]] == [f"line {i}\n" for i in range(4)]
    assert page["next"] == page["items"][-1]["id"]
    rest = (await api.get(url, params={"after": page["next"]})).json()
    assert rest["items"][-1] == {"id": rest["next"], "text": "warning\n", "step": 2,
                                 "stream": "err"}  # fmt: skip
    assert len(rest["items"]) == 2
    empty = (await api.get(url, params={"after": rest["next"]})).json()
    assert empty == {"items": [], "next": rest["next"]}  # poll on with the same id


@pytest.mark.parametrize(("query", "where"), [({"after": "latest"}, "query.after"),
                                              ({"limit": 0}, "query.limit"),
                                              ({"limit": 1001}, "query.limit")])  # fmt: skip
async def test_a_bad_output_query_is_refused_naming_it(
    api: httpx.AsyncClient, query: dict[str, Any], where: str
) -> None:
    job_id = await submit(api)
    r = await api.get(f"/api/queue/jobs/{job_id}/output", params=query)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["path"] == where


async def test_output_of_an_unknown_job_is_not_found(api: httpx.AsyncClient) -> None:
    unknown = "job-01-0123456789abcdefghijklmnop"
    for suffix in ["output", "output/stream", "artifacts", "artifacts/attempt-1/a.log"]:
        r = await api.get(f"/api/queue/jobs/{unknown}/{suffix}")
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, suffix


async def read_events(response: httpx.Response, until: str) -> list[tuple[str, str, str]]:
    """(event, id, data) of each server-sent event, up to and including one of type `until`."""
    seen: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "" and fields:
            seen.append((fields.get("event", ""), fields.get("id", ""), fields.get("data", "")))
            if fields.get("event") == until:
                return seen
            fields = {}
        elif not line.startswith(":") and ": " in line:
            name, value = line.split(": ", 1)
            fields[name] = value
    return seen


async def test_the_output_streams_live_and_ends_once_the_job_finished(
    live_api: httpx.AsyncClient, store: EventStore
) -> None:
    job_id = await submit(live_api)
    await job_when(live_api, job_id, lambda j: j.get("id") == job_id)
    output = OutputStream(store.redis, store.keys)
    await output.append(job_id, [OutputChunk("one\n", 1), OutputChunk("two\n", 1)])
    url = f"/api/queue/jobs/{job_id}/output/stream"

    async def follow() -> list[tuple[str, str, str]]:
        async with live_api.stream("GET", url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            return await read_events(response, "end")

    reader = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    assert not reader.done(), "the stream waits while the job is not finished"
    await output.append(job_id, [OutputChunk("three\n", 2)])
    await asyncio.sleep(0.2)
    r = await live_api.post(f"/api/queue/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    events = await asyncio.wait_for(reader, 10)
    assert [e[0] for e in events] == ["output", "output", "output", "end"]
    assert [e[2] for e in events][-1] == '{"status":"cancelled"}'
    texts = [httpx.Response(200, content=e[2]).json()["text"] for e in events[:3]]
    assert texts == ["one\n", "two\n", "three\n"]
    # A reader that reconnects says where it was; it gets only what came after.
    async with live_api.stream("GET", url, headers={"Last-Event-ID": events[0][1]}) as again:
        resumed = await asyncio.wait_for(read_events(again, "end"), 10)
    assert [e[1] for e in resumed[:-1]] == [e[1] for e in events[1:3]]
    async with live_api.stream("GET", url, params={"after": events[1][1]}) as again:
        resumed = await asyncio.wait_for(read_events(again, "end"), 10)
    assert [e[1] for e in resumed] == [events[2][1], ""]


# ---- artifacts ---------------------------------------------------------------------------


async def test_artifacts_are_listed_from_their_events_and_downloaded(
    api: httpx.AsyncClient, store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    job_id = await submit(api)
    job = await running(store, job_id)
    files = artifacts_of(settings)
    log = tmp_path / "step-1.log"
    log.write_text("did the thing\n")
    stored = [
        files.put_file(job_id, job.attempt, "logs/steps/step-1.log", log),
        files.put_bytes(job_id, job.attempt, "run_summary.json", b'{"ok": true}'),
        files.put_bytes(job_id, job.attempt, "bundle.tar", b"\x00\x01binary"),
    ]
    await report(store, job_id, lambda j: [added(j, s) for s in stored])
    url = f"/api/queue/jobs/{job_id}/artifacts"

    async def listed() -> Any:
        return (await api.get(url)).json()

    items = (await eventually(listed, lambda b: len(b["items"]) == 3))["items"]
    assert items[0] == {
        "name": "logs/steps/step-1.log", "path": "attempt-1/logs/steps/step-1.log",
        "ref": "artifact", "size": 14, "sha256": stored[0].sha256,
        "contentType": "text/plain; charset=utf-8", "truncated": False, "attempt": 1,
    }  # fmt: skip
    text = await api.get(f"{url}/attempt-1/logs/steps/step-1.log")
    assert text.status_code == 200 and text.text == "did the thing\n"
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.headers["content-disposition"].startswith("inline")
    assert text.headers["x-content-type-options"] == "nosniff"
    summary = await api.get(f"{url}/attempt-1/run_summary.json")
    assert summary.headers["content-type"] == "application/json" and summary.json() == {"ok": True}
    binary = await api.get(f"{url}/attempt-1/bundle.tar")
    assert binary.content == b"\x00\x01binary"
    assert binary.headers["content-type"] == "application/octet-stream"
    assert binary.headers["content-disposition"] == 'attachment; filename="bundle.tar"'
    view = (await api.get(f"/api/queue/jobs/{job_id}")).json()
    assert [a["sha256"] for a in view["artifacts"]] == [s.sha256 for s in stored]


async def test_paths_out_of_the_jobs_folder_are_refused(
    api: httpx.AsyncClient, store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    job_id, other = await submit(api), await submit(api)
    files = artifacts_of(settings)
    files.put_bytes(job_id, 1, "ok.log", b"fine")
    files.put_bytes(other, 1, "theirs.log", b"another job's")
    secret = tmp_path / "secret.txt"
    secret.write_text("never served")
    folder = settings.data_dir / "artifacts" / job_id / "attempt-1"
    (folder / "leak.log").symlink_to(secret)
    (folder / "sibling.log").symlink_to(folder.parents[1] / other / "attempt-1" / "theirs.log")
    url = f"/api/queue/jobs/{job_id}/artifacts/"
    assert (await api.get(url + "attempt-1/ok.log")).text == "fine"
    refused = {
        "..%2F..%2F..%2Fsecret.txt": 422, "attempt-1%2F..%2F..%2Fsecret.txt": 422,
        "attempt-1/..%2f..%2fsecret.txt": 422, "%2Fetc%2Fpasswd": 422,
        "attempt-1/%2e%2e/%2e%2e/secret.txt": 422, "attempt-1/a%5C..%5Cb": 422,
        "attempt-1/a%00b": 422, "attempt-1/%252e%252e%252fsecret.txt": 404,
        "attempt-1/leak.log": 404, "attempt-1/sibling.log": 404, "attempt-1/missing.log": 404,
        f"..%2F{other}%2Fattempt-1%2Ftheirs.log": 422, "ok.log": 404, "attempt-1": 404,
    }  # fmt: skip
    for path, status in refused.items():
        r = await api.get(url + path)
        assert (r.status_code, r.headers["content-type"]) == (status, PROBLEM), path
        assert "never served" not in r.text and "another job's" not in r.text


# ---- controls ----------------------------------------------------------------------------


async def versions(store: EventStore, job_id: str) -> int:
    return await store.version(job_id)


async def test_pause_and_resume_answer_with_the_job(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    job_id = await submit(api)
    url = f"/api/queue/jobs/{job_id}/control"
    r = await api.post(url, json={"action": "pause", "reason": "wait for the review"})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] and r.json()["pauseReason"] == "wait for the review"
    again = await api.post(url, json={"action": "pause"})
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"]
    r = await api.post(url, json={"action": "resume"})
    assert r.status_code == 200 and not r.json()["paused"]
    types = [e.type for e in await store.read_aggregate(job_id)]
    assert types == ["job.submitted", "job.paused", "job.resumed"]


async def test_refused_controls_are_problems_and_append_nothing(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    job_id = await submit(api)
    url = f"/api/queue/jobs/{job_id}"
    for body, where in [({"action": "stop"}, "action"), ({}, "action"),
                        ({"action": "pause", "reason": "x" * 2001}, "reason"),
                        ({"action": "pause", "extra": 1}, "extra")]:  # fmt: skip
        r = await api.post(url + "/control", json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == where, body
    for body, where in [({"text": ""}, "text"), ({"text": " \n\t"}, "text"),
                        ({"text": "x" * 4001}, "text"), ({}, "text")]:  # fmt: skip
        r = await api.post(url + "/operator-messages", json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == where, body
    assert await versions(store, job_id) == 1
    await api.post(url + "/cancel")
    finished = await versions(store, job_id)
    r = await api.post(url + "/control", json={"action": "pause"})
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    assert r.json()["allowed_statuses"] == ["queued", "running"]
    r = await api.post(url + "/operator-messages", json={"text": "too late"})
    assert r.status_code == 409
    assert await versions(store, job_id) == finished


async def test_an_operator_message_is_answered_as_stored_and_shown_on_the_job(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    job_id = await submit(api)
    url = f"/api/queue/jobs/{job_id}/operator-messages"
    r = await api.post(url, json={"text": "  use the staging database  "})
    assert r.status_code == 201, r.text
    message = r.json()
    assert (message["id"], message["text"]) == (2, "use the staging database")
    headers = {"Idempotency-Key": "msg-1"}
    first = await api.post(url, json={"text": "and be quick"}, headers=headers)
    retried = await api.post(url, json={"text": "and be quick"}, headers=headers)
    assert first.status_code == retried.status_code == 201 and first.json() == retried.json()
    view = (await api.get(f"/api/queue/jobs/{job_id}")).json()
    assert [m["text"] for m in view["operatorMessages"]] == ["use the staging database",
                                                             "and be quick"]  # fmt: skip
    token = "ghp_" + "a" * 36
    r = await api.post(url, json={"text": f"the token is {token}"})
    assert r.status_code == 422 and token not in r.text
    assert await versions(store, job_id) == 3


async def test_the_job_view_shows_branches_steps_and_publish(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    job_id = await submit(api)
    job = await running(store, job_id)
    e = job.epoch
    await report(store, job_id, lambda j: [
        JobBranchResolved(epoch=e, repository="acme/app", default="main", starting="main",
                          new="cairn/20261130/abcdefgh", working="cairn/20261130/abcdefgh"),
        JobStepStarted(epoch=e, index=1, step_id="implement", title="Implement"),
        JobStepFinished(epoch=e, index=1, step_id="implement", outcome="succeeded",
                        exit_status=0, duration_ms=1500, files=3, insertions=20, deletions=4),
        JobPublished(epoch=e, outcome="PUBLISHED_PR", branch="cairn/20261130/abcdefgh",
                     pr_url="https://github.com/acme/app/pull/12", commit="0123abc"),
    ])  # fmt: skip
    view = await job_when(api, job_id, lambda j: j["publish"] is not None)
    assert view["branches"]["working"] == "cairn/20261130/abcdefgh"
    [step] = view["steps"]
    assert (step["stepId"], step["title"], step["status"], step["exitStatus"]) == (
        "implement", "Implement", "succeeded", 0)  # fmt: skip
    assert (step["files"], step["insertions"], step["deletions"], step["durationMs"]) == (
        3, 20, 4, 1500)  # fmt: skip
    assert view["publish"]["prUrl"] == "https://github.com/acme/app/pull/12"
    assert view["publish"]["outcome"] == "PUBLISHED_PR" and view["paused"] is False


async def test_the_new_routes_are_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    base = "/api/queue/jobs/{job_id}"
    output = paths[base + "/output"]["get"]
    assert {p["name"] for p in output["parameters"]} == {"job_id", "after", "limit"}
    assert output["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Output"}  # fmt: skip
    assert "text/event-stream" in paths[base + "/output/stream"]["get"]["responses"]["200"][
        "content"]  # fmt: skip
    artifact = paths[base + "/artifacts/{path}"]["get"]
    assert {"text/plain", "application/octet-stream"} <= set(
        artifact["responses"]["200"]["content"])
    assert paths[base + "/artifacts"]["get"]["responses"]["200"]
    control = paths[base + "/control"]["post"]["requestBody"]["content"]["application/json"]
    assert control["schema"] == {"$ref": "#/components/schemas/ControlBody"}
    message = paths[base + "/operator-messages"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in message["parameters"]}
    assert set(message["responses"]) >= {"201", "202", "422"}
    schemas = document["components"]["schemas"]
    assert schemas["ControlBody"]["properties"]["action"]["enum"] == ["pause", "resume"]
    assert {"steps", "paused", "operatorMessages", "artifacts"} <= set(
        schemas["Job"]["required"])


async def finished_run(api: httpx.AsyncClient, store: EventStore, job_id: str) -> None:
    """A worker ran the job: it pushed its branch and its agent's session was `sess-1`."""
    await running(store, job_id)
    await report(store, job_id, lambda job: [
        JobBranchResolved(epoch=job.epoch, repository="acme/app", default="main",
                          starting="main", new="cairn/a", working="cairn/a"),
        JobStepFinished(epoch=job.epoch, index=1, step_id="step-1", outcome="succeeded",
                        session_id="sess-1"),
        JobPublished(epoch=job.epoch, outcome="PUBLISHED_BRANCH", branch="cairn/a"),
        JobSucceeded(epoch=job.epoch),
    ])  # fmt: skip
    await job_when(api, job_id, lambda j: j["status"] == "succeeded")


async def test_a_follow_up_is_a_new_job_on_the_pushed_branch_linked_both_ways(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    job_id = await submit(api)
    url = f"/api/queue/jobs/{job_id}/follow-ups"
    r = await api.post(url, json={"message": "now also X"})
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM  # still queued
    assert "send a message" in r.json()["detail"]
    await finished_run(api, store, job_id)
    before = await versions(store, job_id)
    for body, where in [({"message": ""}, "message"), ({"message": "  "}, "message"),
                        ({}, "message"), ({"message": "x" * 20_001}, "message")]:  # fmt: skip
        r = await api.post(url, json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["path"].endswith(where), r.text
    assert await versions(store, job_id) == before  # a refusal appends nothing
    headers = {"Idempotency-Key": "fu-1"}
    r = await api.post(url, json={"message": "now also X"}, headers=headers)
    assert r.status_code == 201, r.text
    follow = r.json()
    again = await api.post(url, json={"message": "now also X"}, headers=headers)
    assert again.json()["id"] == follow["id"]  # a retry makes it once
    assert (follow["follows"], follow["resumeSession"]) == (job_id, "sess-1")
    task = follow["normalized"]["task"]
    assert task["instructions"] == "now also X" and task["git"]["startingBranch"] == "cairn/a"
    first = await job_when(api, job_id, lambda j: j["followedBy"])
    assert first["followedBy"] == [{"jobId": follow["id"], "message": "now also X"}]


async def test_a_task_sent_back_with_a_message_runs_a_follow_up_of_its_last_run(
    api: httpx.AsyncClient, store: EventStore
) -> None:
    r = await api.post("/api/v2/tasks", json={
        "title": "Greet", "task_type": "feature", "priority": 1, "spec": {
        "repository": "acme/app", "targetRuntime": "claude", "task": {"instructions": "Greet"}}})
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    r = await api.post(f"/api/v2/tasks/{task_id}/changes", json={"message": "louder"})
    assert r.status_code == 409 and "has not run yet" in r.json()["detail"]
    r = await api.post(f"/api/v2/tasks/{task_id}/run")
    assert r.status_code in (200, 201, 202), r.text
    job_id = r.json()["job_id"]
    await finished_run(api, store, job_id)
    r = await api.post(f"/api/v2/tasks/{task_id}/changes", json={"message": "louder"})
    assert r.status_code == 201, r.text
    follow = r.json()
    assert follow["follows"] == job_id and follow["taskId"] == task_id
    events = (await api.get(f"/api/v2/tasks/{task_id}/events")).json()["events"]
    assert events[-1]["type"] == "task.run_requested"  # in its history, with the message
    assert events[-1]["data"] == {"job_id": follow["id"], "reason": "changes requested: louder"}
