"""Ids in paths: a malformed or unknown id is the client's mistake (404), never a 500, and
neither the answer nor the log repeats more of it than a short, safe form."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

TASK = {"title": "t", "task_type": "feature", "priority": "high"}
SECRET = "ghp_" + "c" * 36
UNKNOWN = "task-01-0123456789abcdefghijklmnop"  # well formed, never created
BAD_TASK_IDS = [
    "0",
    "task-99-0123456789abcdefghijklmnop",  # partition past the install's 4
    "job-01-0123456789abcdefghijklmnop",  # a job id where a task id belongs
    "task-01-" + SECRET,
    "x" * 5000,
]
BAD_JOB_IDS = ["0", "job-99-0123456789abcdefghijklmnop", "task-01-0123456789abcdefghijklmnop"]

TASK_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v2/tasks/{id}", None),
    ("PATCH", "/api/v2/tasks/{id}", {"title": "x"}),
    ("POST", "/api/v2/tasks/{id}/transition", {"to": "ready"}),
    ("POST", "/api/v2/tasks/{id}/dependencies", {"blocked_by": []}),
    ("POST", "/api/v2/tasks/{id}/dependencies", {"blocked_by": [UNKNOWN]}),
    ("DELETE", "/api/v2/tasks/{id}/dependencies/" + UNKNOWN, None),
    ("GET", "/api/v2/tasks/{id}/events", None),
    ("POST", "/api/v2/tasks/{id}/run", None),
    ("POST", "/api/v2/tasks/{id}/retry", None),
    ("POST", "/api/v2/tasks/{id}/cancel", None),
]
JOB_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/queue/jobs/{id}", None),
    ("PUT", "/api/queue/jobs/{id}", {"expectedVersion": 1, "priority": 1}),
    ("POST", "/api/queue/jobs/{id}/cancel", None),
    ("POST", "/api/queue/jobs/{id}/resubmit", None),
    ("GET", "/api/queue/jobs/{id}/events", None),
    ("GET", "/api/queue/jobs/{id}/events/stream", None),
    ("GET", "/api/v2/quick-runs/{id}", None),
    ("POST", "/api/v2/quick-runs/{id}/promote", None),
]


def assert_quiet(caplog: pytest.LogCaptureFixture, raw: str) -> None:
    """Nothing logged a traceback, and no log line holds the raw id (the test's own HTTP
    client logs its requests: not the server's log)."""
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue
        assert record.exc_info is None, record.getMessage()
        assert raw not in record.getMessage()


@pytest.mark.parametrize("bad", BAD_TASK_IDS)
@pytest.mark.parametrize(("method", "path", "body"), TASK_ROUTES)
async def test_a_malformed_task_id_is_404_and_not_logged(
    api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    bad: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await api.request(method, path.format(id=bad), json=body)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found" and "task" in r.json()["detail"]
    assert SECRET not in r.text and len(r.text) < 1000
    assert_quiet(caplog, bad)


@pytest.mark.parametrize("bad", BAD_JOB_IDS)
@pytest.mark.parametrize(("method", "path", "body"), JOB_ROUTES)
async def test_a_malformed_job_id_is_404_and_not_logged(
    api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    bad: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await api.request(method, path.format(id=bad), json=body)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"
    assert_quiet(caplog, bad)


async def test_a_malformed_dependency_id_is_404(api: httpx.AsyncClient) -> None:
    task = (await api.post("/api/v2/tasks", json=TASK)).json()
    r = await api.delete(f"/api/v2/tasks/{task['id']}/dependencies/0")
    assert r.status_code == 404 and "'0' is not a task id" in r.json()["detail"]


async def test_a_malformed_blocker_in_a_body_is_refused_with_its_path(
    api: httpx.AsyncClient,
) -> None:
    task = (await api.post("/api/v2/tasks", json=TASK)).json()
    r = await api.post(f"/api/v2/tasks/{task['id']}/dependencies", json={"blocked_by": ["0"]})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "blocked_by[0]"
    r = await api.post("/api/v2/tasks", json={**TASK, "blocked_by": ["0"]})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "blocked_by[0]"
    r = await api.post("/api/v2/tasks", json={**TASK, "parent_id": "job-01-x"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "parent_id"


async def test_no_dependencies_on_an_unknown_task_is_404(api: httpx.AsyncClient) -> None:
    unknown = "task-01-0123456789abcdefghijklmnop"
    r = await api.post(f"/api/v2/tasks/{unknown}/dependencies", json={"blocked_by": []})
    assert r.status_code == 404, r.text
    assert unknown in r.json()["detail"]


async def test_an_unexpected_error_is_logged_without_the_request(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.projections.tasks.board import Board

    async def broken(self: Board, project: str) -> list[Any]:
        raise RuntimeError(f"boom while reading {project}")

    monkeypatch.setattr(Board, "project_tasks", broken)
    caplog.set_level(logging.DEBUG)
    r = await api.get("/api/v2/tasks/board", params={"project": "p-" + SECRET})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "internal_error" and SECRET not in r.text
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    text = record.getMessage()
    assert "RuntimeError" in text and "GET /api/v2/tasks/board" in text
    assert SECRET not in text and "boom" not in text
