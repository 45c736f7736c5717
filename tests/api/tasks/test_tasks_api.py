"""The task API end to end on a real server with the projector running."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from cairn.domain.tasks.states import TRANSITIONS


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"title": "t", "task_type": "feature", "priority": "high", **fields}
    r = await api.post("/api/v2/tasks", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_then_read_sees_the_write(api: httpx.AsyncClient) -> None:
    created = await create(api, title="Write docs", labels=["docs"], acceptance_criteria=["a"])
    assert created["status"] == "backlog" and created["priority"] == 2 and created["version"] == 1
    r = await api.get(f"/api/v2/tasks/{created['id']}")
    assert r.status_code == 200
    task = r.json()
    for field in (
        "id",
        "version",
        "project",
        "title",
        "task_type",
        "priority",
        "description",
        "acceptance_criteria",
        "context_files",
        "blocked_by",
        "blocks",
        "parent_id",
        "children_ids",
        "labels",
        "assignee",
        "pipeline_template",
        "source",
        "current_step",
        "current_agent_id",
        "run_ids",
        "retry_count",
        "error",
        "status",
    ):
        assert field in task, field


async def test_auth_required_and_health_open(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v2/projects", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert (await api.get("/healthz", headers={"Authorization": ""})).status_code == 200


async def test_validation_errors_name_the_field(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v2/tasks", json={"title": "", "task_type": "nope", "priority": "x"})
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert {e["path"] for e in body["errors"]} == {"title", "task_type", "priority"}
    r = await api.get("/api/v2/projects")
    assert r.json()["projects"] == []


async def test_every_transition_pair_through_the_api(api: httpx.AsyncClient) -> None:
    for src, targets in TRANSITIONS.items():
        for dst in ("backlog", "ready", "in_progress", "in_review", "done", "blocked", "cancelled"):
            task = await create(api)
            await _drive_to(api, task["id"], src.value)
            r = await api.post(f"/api/v2/tasks/{task['id']}/transition",
                               json={"to": dst, "force": dst == "in_progress"})  # fmt: skip
            if dst in targets:
                assert r.status_code == 200, (src, dst, r.text)
                assert r.json()["status"] == dst
            else:
                assert r.status_code == 409, (src, dst, r.text)
                assert r.json()["code"] == "invalid_transition"
                assert r.json()["allowed_targets"] == [t.value for t in targets]


PATHS = {
    "backlog": [], "ready": ["ready"], "in_progress": ["ready", "in_progress"],
    "in_review": ["ready", "in_progress", "in_review"],
    "done": ["ready", "in_progress", "in_review", "done"], "blocked": ["ready", "blocked"],
    "cancelled": ["cancelled"],
}  # fmt: skip


async def _drive_to(api: httpx.AsyncClient, task_id: str, status: str) -> None:
    for step in PATHS[status]:
        r = await api.post(f"/api/v2/tasks/{task_id}/transition",
                           json={"to": step, "force": step == "in_progress"})  # fmt: skip
        assert r.status_code == 200, r.text


async def test_claim_and_dependency_guards(api: httpx.AsyncClient) -> None:
    a = await create(api, title="A")
    b = await create(api, title="B", blocked_by=[a["id"]])
    assert (await api.get(f"/api/v2/tasks/{a['id']}")).json()["blocks"] == [b["id"]]
    r = await api.post(f"/api/v2/tasks/{b['id']}/transition", json={"to": "ready"})
    assert r.status_code == 409 and r.json()["code"] == "dependency_unresolved"
    assert r.json()["blockers"] == [{"id": a["id"], "status": "backlog"}]
    r = await api.post(f"/api/v2/tasks/{a['id']}/transition", json={"to": "ready"})
    r = await api.post(f"/api/v2/tasks/{a['id']}/transition", json={"to": "in_progress"})
    assert r.status_code == 409 and r.json()["code"] == "claim_required"
    events = (await api.get(f"/api/v2/tasks/{b['id']}/events")).json()["events"]
    assert [e["type"] for e in events] == ["task.created"]


async def test_unresolved_blocker_moves_ready_task_to_blocked(api: httpx.AsyncClient) -> None:
    a = await create(api, title="A")
    b = await create(api, title="B", status="ready")
    r = await api.post(f"/api/v2/tasks/{b['id']}/dependencies", json={"blocked_by": a["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "blocked"
    assert r.json()["blocked"]["reason"]["code"] == "waiting_on_dependencies"
    await api.post(f"/api/v2/tasks/{a['id']}/transition", json={"to": "cancelled"})
    board = (await api.get("/api/v2/tasks/board", params={"project": "default"})).json()
    [blocked] = next(c for c in board["columns"] if c["status"] == "blocked")["cards"]
    assert blocked["can_move_to_ready"] is True
    assert "can now be moved to ready" in blocked["blocked"]["to_unblock"]


async def test_cycles_and_cross_project_refused(api: httpx.AsyncClient) -> None:
    a, b, c = [await create(api, title=n) for n in "ABC"]
    await api.post(f"/api/v2/tasks/{b['id']}/dependencies", json={"blocked_by": a["id"]})
    await api.post(f"/api/v2/tasks/{c['id']}/dependencies", json={"blocked_by": b["id"]})
    r = await api.post(f"/api/v2/tasks/{a['id']}/dependencies", json={"blocked_by": c["id"]})
    assert r.status_code == 409 and r.json()["code"] == "dependency_cycle"
    assert r.json()["cycle"] == [a["id"], c["id"], b["id"], a["id"]]
    other = await create(api, project="other")
    r = await api.post(f"/api/v2/tasks/{a['id']}/dependencies", json={"blocked_by": other["id"]})
    assert r.status_code == 422 and r.json()["code"] == "cross_project_dependency"
    r = await api.post(f"/api/v2/tasks/{a['id']}/dependencies", json={"blocked_by": a["id"]})
    assert r.status_code == 422 and r.json()["code"] == "self_dependency"
    r = await api.delete(f"/api/v2/tasks/{b['id']}/dependencies/{a['id']}")
    assert r.status_code == 200 and r.json()["blocked_by"] == []


async def test_concurrent_transitions_same_expected_version(api: httpx.AsyncClient) -> None:
    task = await create(api)
    replies = await asyncio.gather(*(
        api.post(f"/api/v2/tasks/{task['id']}/transition",
                 json={"to": "ready", "expected_version": 1}) for _ in range(10)
    ))  # fmt: skip
    assert sorted(r.status_code for r in replies) == [200] + [409] * 9
    assert {r.json()["code"] for r in replies if r.status_code == 409} == {"version_conflict"}


async def test_idempotency_key_returns_first_result(api: httpx.AsyncClient) -> None:
    body = {"title": "once", "task_type": "chore", "priority": 0}
    first = await api.post("/api/v2/tasks", json=body, headers={"Idempotency-Key": "k1"})
    again = await api.post("/api/v2/tasks", json=body, headers={"Idempotency-Key": "k1"})
    assert first.json()["id"] == again.json()["id"]
    listed = (await api.get("/api/v2/tasks")).json()["items"]
    assert len(listed) == 1


async def test_list_filters_and_cursor(api: httpx.AsyncClient) -> None:
    for i in range(7):
        await create(api, title=f"t{i}", priority=i % 3, labels=["x"] if i % 2 else [])
    page1 = (await api.get("/api/v2/tasks", params={"limit": 4})).json()
    page2 = (
        await api.get("/api/v2/tasks", params={"limit": 4, "cursor": page1["next_cursor"]})
    ).json()
    titles = [t["title"] for t in page1["items"] + page2["items"]]
    assert len(titles) == 7 and len(set(titles)) == 7
    assert [t["priority"] for t in page1["items"] + page2["items"]] == [2, 2, 1, 1, 0, 0, 0]
    labelled = (await api.get("/api/v2/tasks", params={"label": "x"})).json()["items"]
    assert {t["title"] for t in labelled} == {"t1", "t3", "t5"}
    r = await api.get("/api/v2/tasks", params={"status": "flying"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "query.status"


async def test_state_machine_and_openapi(api: httpx.AsyncClient) -> None:
    machine = (await api.get("/api/v2/state-machine")).json()
    assert machine["transitions"] == {
        s.value: [t.value for t in ts] for s, ts in TRANSITIONS.items()
    }
    assert machine["flags"] == {"FEATURE_PRD_AUTO_APPROVE_REVIEW": False}
    doc = (await api.get("/openapi.json")).json()
    assert "/api/v2/tasks/{task_id}/transition" in doc["paths"]


async def test_openapi_names_each_operation_once_and_offers_idempotency_where_honoured(
    api: httpx.AsyncClient,
) -> None:
    doc = (await api.get("/openapi.json")).json()
    ops = [op for methods in doc["paths"].values() for op in methods.values()]
    ids = [op["operationId"] for op in ops]
    assert len(ids) == len(set(ids))
    task_cancel = doc["paths"]["/api/v2/tasks/{task_id}/cancel"]["post"]
    assert "requestBody" not in task_cancel  # it reads no body

    def headers(path: str, method: str) -> list[str]:
        return [p["name"] for p in doc["paths"][path][method]["parameters"] if p["in"] == "header"]

    assert headers("/api/v2/tasks", "post") == ["Idempotency-Key"]
    assert headers("/api/v2/tasks/{task_id}/cancel", "post") == []
