"""What the HTTP layer promises beyond each route: the OpenAPI document describes what is
accepted and answered, 405 names what is allowed, 503 says when to retry, an oversized
header is 431, and strict types mean what they say."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cairn.api.auth import BearerAuth
from cairn.domain.errors import InfrastructureError
from cairn.projections.tasks.board import Board

TASK = {"title": "t", "task_type": "feature", "priority": "high"}


async def openapi(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, methods in doc["paths"].items() for m, op in methods.items()]


def query_params(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in op.get("parameters", []) if p["in"] == "query"}


async def test_every_get_declares_the_query_it_reads(api: httpx.AsyncClient) -> None:
    doc = await openapi(api)
    tasks = query_params(doc["paths"]["/api/v2/tasks"]["get"])
    assert {"status", "priority", "label", "project", "limit", "cursor"} <= set(tasks)
    assert tasks["limit"]["maximum"] == 500 and tasks["limit"]["minimum"] == 1
    jobs = query_params(doc["paths"]["/api/queue/jobs"]["get"])
    assert {"status", "type", "runtime", "project", "limit", "cursor"} <= set(jobs)
    assert jobs["status"]["enum"]
    events = query_params(doc["paths"]["/api/queue/jobs/{job_id}/events"]["get"])
    assert events["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    board = query_params(doc["paths"]["/api/v2/tasks/board"]["get"])
    assert set(board) == {"project", "min_position"}


async def test_every_operation_documents_its_success_body(api: httpx.AsyncClient) -> None:
    doc = await openapi(api)
    for path, method, op in operations(doc):
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok and "2XX" not in ok, (method, path)
        for code in ok:
            content = op["responses"][code].get("content", {})
            assert content, (method, path, code)
            schema = next(iter(content.values()))["schema"]
            assert schema, (method, path, code)
        for code in ("401", "422"):
            assert code in op["responses"], (method, path, code)
    post_task = doc["paths"]["/api/v2/tasks"]["post"]["responses"]
    assert {"201", "202", "413"} <= set(post_task)


async def test_openapi_states_the_bounds(api: httpx.AsyncClient) -> None:
    doc = await openapi(api)
    schemas = doc["components"]["schemas"]
    create = schemas["CreateBody"]["properties"]
    assert create["title"]["maxLength"] == 300
    assert create["force"]["type"] == "boolean"
    priority = {s.get("type"): s for s in create["priority"]["anyOf"]}
    assert priority["integer"]["minimum"] == -1_000_000
    assert priority["integer"]["maximum"] == 1_000_000
    assert priority["string"]["enum"] == ["critical", "high", "medium", "low"]
    assert "32" in create["spec"]["description"]
    post_task = doc["paths"]["/api/v2/tasks"]["post"]
    [key] = [p for p in post_task["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["schema"]["minLength"] == 1 and key["schema"]["maxLength"] == 200
    assert "1048576" in doc["info"]["description"].replace(",", "")


async def test_a_405_names_every_allowed_method(api: httpx.AsyncClient) -> None:
    r = await api.put("/api/v2/tasks", json={})
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    r = await api.delete("/api/v2/tasks/task-01-0123456789abcdefghijklmnop")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v2/tasks", {**TASK, "force": 0}),
        ("/api/v2/tasks", {**TASK, "force": "true"}),
        ("/api/v2/quick-runs", {"prompt": "x", "repository": "acme/app", "promote": 1}),
    ],
)
async def test_a_flag_must_be_a_boolean(api: httpx.AsyncClient, path: str, body: Any) -> None:
    r = await api.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] in {"force", "promote"}


async def test_a_transition_flag_must_be_a_boolean(api: httpx.AsyncClient) -> None:
    task = (await api.post("/api/v2/tasks", json=TASK)).json()
    r = await api.post(f"/api/v2/tasks/{task['id']}/transition", json={"to": "ready", "force": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "force"


BLANKS = ["\u200b", "\u200b\u200c\u200d\ufeff", " \u2060 ", "\u00a0\u3000"]


@pytest.mark.parametrize("blank", BLANKS)
async def test_a_title_of_invisible_characters_is_blank(api: httpx.AsyncClient, blank: str) -> None:
    r = await api.post("/api/v2/tasks", json={**TASK, "title": blank})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "title"
    task = (await api.post("/api/v2/tasks", json=TASK)).json()
    r = await api.patch(f"/api/v2/tasks/{task['id']}", json={"title": blank})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "title"


async def test_a_503_says_when_to_retry(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(self: Board, project: str) -> list[Any]:
        raise InfrastructureError("the store is unavailable: connection refused")

    monkeypatch.setattr(Board, "project_tasks", down)
    r = await api.get("/api/v2/tasks/board")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1


async def test_a_503_before_the_route_says_when_to_retry(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(self: BearerAuth, token: str) -> str | None:
        raise InfrastructureError("the store is unavailable: connection refused")

    monkeypatch.setattr(BearerAuth, "_actor", down)
    r = await api.get("/api/v2/projects")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1


async def test_a_1_mb_header_is_431_from_a_real_server(live_api: httpx.AsyncClient) -> None:
    r = await live_api.get("/api/v2/projects", headers={"X-Big": "a" * 1_000_000})
    assert r.status_code == 431
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "headers_too_large"
    r = await live_api.get("/api/v2/projects")  # the server goes on serving
    assert r.status_code == 200


async def test_a_body_over_the_limit_is_413_from_a_real_server(
    live_api: httpx.AsyncClient,
) -> None:
    body = b'{"title": "' + b"x" * 2_000_000 + b'"}'
    r = await live_api.post("/api/v2/tasks", content=body)
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
