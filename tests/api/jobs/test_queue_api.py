"""The queue API on a real server with the projectors running."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.commands.settings import Settings
from cairn.streams.keys import Keys

PAYLOAD = {
    "repository": "acme/app",
    "targetRuntime": "claude",
    "task": {"instructions": "Fix the flaky test"},
}


async def submit(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await api.post("/api/queue/jobs", json={"type": "task", "payload": PAYLOAD, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def log_sizes(client: aioredis.Redis, keys: Keys) -> list[int]:
    return [await client.xlen(keys.log(p)) for p in keys.all_partitions()]


async def test_submit_stores_original_and_normalized(api: httpx.AsyncClient) -> None:
    job = await submit(api, priority="high", maxAttempts=5, affinityKey="repo:acme")
    assert job["status"] == "queued" and job["priority"] == 2 and job["maxAttempts"] == 5
    assert job["payload"] == PAYLOAD
    assert job["normalized"]["task"]["publish"]["mode"] == "pr"
    assert job["requiredCapabilities"] == ["claude", "git", "gh"]
    got = (await api.get(f"/api/queue/jobs/{job['id']}")).json()
    assert got["id"] == job["id"] and got["attempt"] == 0 and got["workerId"] is None


async def test_refused_payload_names_path_and_appends_nothing(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys
) -> None:
    before = await log_sizes(client, keys)
    token = "ghp_" + "a" * 36
    bad = {**PAYLOAD, "task": {"instructions": "x", "steps": [{"instructions": token}]}}
    r = await api.post("/api/queue/jobs", json={"type": "task", "payload": bad})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["path"] == "payload.task.steps[0].instructions"
    assert token not in r.text
    r = await api.post("/api/queue/jobs", json={"type": "task", "payload": {"task": {}}})
    assert r.status_code == 422
    assert await log_sizes(client, keys) == before


async def test_legacy_jobs_normalize_warn_and_count(api: httpx.AsyncClient) -> None:
    legacy = {
        "instruction": "Refactor",
        "codex": {"model": "gpt-5"},
        "ref": "main",
        "inputs": {"repo": "acme/legacy"},
        "publishMode": "branch",
    }
    r = await api.post("/api/queue/jobs", json={"type": "codex_exec", "payload": legacy})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["type"] == "task" and job["submittedType"] == "codex_exec"
    assert job["normalized"]["task"]["instructions"] == "Refactor"
    assert job["normalized"]["task"]["git"]["startingBranch"] == "main"
    assert job["normalized"]["repository"] == "acme/legacy" and job["warnings"]
    events = (await api.get(f"/api/queue/jobs/{job['id']}/events")).json()["events"]
    assert [e["type"] for e in events] == ["job.submitted", "job.legacy_submitted"]
    telemetry = (await api.get("/api/queue/telemetry")).json()
    assert telemetry["legacyByType"] == {"codex_exec": 1}
    assert telemetry["volumeByType"]["codex_exec"] == 1


async def test_manifest_job_needs_the_manifest_capability(api: httpx.AsyncClient) -> None:
    manifest = "name: docs\nversion: 1\nsources:\n  - uri: https://example.com/a.md\n"
    r = await api.post(
        "/api/queue/jobs", json={"type": "manifest", "payload": {"manifest": manifest}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["requiredCapabilities"] == ["manifest"]


async def test_list_filters_counts_and_cursor(api: httpx.AsyncClient) -> None:
    for runtime in ("claude", "gemini", "codex", "claude", "gemini_cli"):
        payload = {**PAYLOAD, "targetRuntime": runtime}
        r = await api.post("/api/queue/jobs", json={"type": "task", "payload": payload})
        assert r.status_code == 201
    listed = (await api.get("/api/queue/jobs", params={"runtime": "gemini"})).json()
    assert len(listed["items"]) == 2 and listed["counts"] == {"queued": 5}
    page1 = (await api.get("/api/queue/jobs", params={"limit": 2})).json()
    page2 = (
        await api.get("/api/queue/jobs", params={"limit": 2, "cursor": page1["nextCursor"]})
    ).json()
    page3 = (
        await api.get("/api/queue/jobs", params={"limit": 2, "cursor": page2["nextCursor"]})
    ).json()
    ids = [j["id"] for j in page1["items"] + page2["items"] + page3["items"]]
    assert len(set(ids)) == 5 and page3["nextCursor"] is None
    created = [j["createdAt"] for j in page1["items"] + page2["items"] + page3["items"]]
    assert created == sorted(created, reverse=True)
    r = await api.get("/api/queue/jobs", params={"colour": "red"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "query.colour"


async def test_update_cancel_resubmit(api: httpx.AsyncClient) -> None:
    job = await submit(api)
    r = await api.put(f"/api/queue/jobs/{job['id']}", json={"expectedVersion": 9, "priority": 3})
    assert r.status_code == 409 and r.json()["code"] == "version_conflict"
    r = await api.put(f"/api/queue/jobs/{job['id']}", json={"expectedVersion": 1, "priority": 3})
    assert r.status_code == 200 and r.json()["priority"] == 3 and r.json()["version"] == 2
    r = await api.post(f"/api/queue/jobs/{job['id']}/cancel", json={"reason": "not needed"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = await api.post(f"/api/queue/jobs/{job['id']}/cancel")
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"]
    r = await api.put(f"/api/queue/jobs/{job['id']}", json={"expectedVersion": 3, "priority": 1})
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    r = await api.post(f"/api/queue/jobs/{job['id']}/resubmit")
    assert r.status_code == 201 and r.json()["resubmittedFrom"] == job["id"]
    old = (await api.get(f"/api/queue/jobs/{job['id']}")).json()
    assert old["resubmittedAs"] == r.json()["id"]
    r = await api.post(f"/api/queue/jobs/{r.json()['id']}/resubmit")
    assert r.status_code == 409


async def test_events_after_and_sse_stream(live_api: httpx.AsyncClient) -> None:
    api = live_api
    job = await submit(api)
    after = (await api.get(f"/api/queue/jobs/{job['id']}/events", params={"after": 1})).json()
    assert after["events"] == []

    async def first_two() -> list[str]:
        lines: list[str] = []
        url = f"/api/queue/jobs/{job['id']}/events/stream"
        async with api.stream("GET", url) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    lines.append(line.removeprefix("event: "))
                if len(lines) == 2:
                    return lines
        return lines

    reader = asyncio.create_task(first_two())
    await asyncio.sleep(0.2)
    await api.post(f"/api/queue/jobs/{job['id']}/cancel")
    assert await asyncio.wait_for(reader, 10) == ["job.submitted", "job.cancelled"]


async def test_quick_runs_stay_off_the_board_and_promote_once(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/v2/quick-runs",
        json={
            "prompt": "Explain the build\nin detail",
            "repository": "acme/app",
            "runtime": "gemini",
        },
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "queued" and run["promoted_task_id"] is None
    board = (await api.get("/api/v2/tasks/board")).json()
    assert board["total"] == 0
    first = (await api.post(f"/api/v2/quick-runs/{run['id']}/promote")).json()
    second = (await api.post(f"/api/v2/quick-runs/{run['id']}/promote")).json()
    assert first["promoted_task_id"] == second["promoted_task_id"] and second["duplicate"]
    board = (await api.get("/api/v2/tasks/board")).json()
    [task] = [c for col in board["columns"] for c in col["cards"]]
    assert task["title"] == "Explain the build" and task["source"] == "promoted_quick_action"
    got = (await api.get(f"/api/v2/quick-runs/{run['id']}")).json()
    assert got["promoted_task_id"] == task["id"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN or infinity
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["task", "codex_exec", "codex_skill", "manifest", "x"]),
            "payload": json_values,
        },
        optional={"priority": json_values, "maxAttempts": json_values, "project": json_values},
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
async def test_any_json_gets_2xx_or_problem_never_5xx(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys, body: Any
) -> None:
    before = await log_sizes(client, keys)
    r = await api.post("/api/queue/jobs", json=body)
    assert r.status_code in (201, 202) or 400 <= r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] and r.json()["detail"]
        assert await log_sizes(client, keys) == before


async def test_legacy_jobs_refused_when_switched_off(
    settings: Settings, client: aioredis.Redis, keys: Keys
) -> None:
    app = create_app(dataclasses.replace(settings, legacy_jobs_enabled=False), client)
    assert settings.admin_token
    await store_token(client, keys, settings.admin_token, "admin", "admin")
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c", headers=headers) as c:
        before = await log_sizes(client, keys)
        payload = {"instruction": "Refactor", "inputs": {"repo": "acme/legacy"}}
        r = await c.post("/api/queue/jobs", json={"type": "codex_exec", "payload": payload})
        assert r.status_code == 422 and "CAIRN_LEGACY_JOBS" in r.json()["detail"]
        assert r.json()["errors"][0]["path"] == "type"
        assert await log_sizes(client, keys) == before


async def test_a_quick_run_is_answered_whole_by_a_real_server(live_api: httpx.AsyncClient) -> None:
    """The quick-run view is not the job view: its headers must describe its own body."""
    r = await live_api.post(
        "/api/v2/quick-runs", json={"prompt": "Say hello", "repository": "acme/app"}
    )
    assert r.status_code == 201, r.text
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.json()["status"] == "queued" and r.headers["cairn-position"]


async def test_a_quick_run_and_a_job_with_the_same_key_are_two_jobs(api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "shared-key-1"}
    job = await api.post("/api/queue/jobs", json={"type": "noop", "payload": {}}, headers=key)
    quick = await api.post("/api/v2/quick-runs", headers=key,
                           json={"prompt": "look around", "repository": "octo/repo"})  # fmt: skip
    assert job.status_code in (201, 202) and quick.status_code in (201, 202), quick.text
    assert job.json()["id"] != quick.json()["id"]
    again = await api.post("/api/v2/quick-runs", headers=key,
                           json={"prompt": "look around", "repository": "octo/repo"})  # fmt: skip
    assert again.json()["id"] == quick.json()["id"]
