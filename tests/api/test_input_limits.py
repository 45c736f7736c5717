"""Limits on what a request may carry: nesting depth, body size, field sizes, page sizes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from cairn.api.app import create_app
from cairn.commands.settings import Settings
from cairn.domain.limits import MAX_DEPTH, MAX_PAGE_BYTES, MAX_SPEC_BYTES
from cairn.streams.keys import Keys

TASK = {"title": "t", "task_type": "feature", "priority": "high"}
PAYLOAD = {"repository": "acme/app", "task": {"instructions": "Fix the flaky test"}}


def nested(depth: int, leaf: Any = 1) -> Any:
    """`{"a": {"a": ... leaf}}` with `depth` objects."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def body_with_spec(depth: int) -> bytes:
    """A task body whose `spec` nests `depth` objects (written by hand: orjson stops at 255)."""
    spec = b'{"a":' * depth + b"1" + b"}" * depth
    return orjson.dumps(TASK)[:-1] + b',"spec":' + spec + b"}"


async def log_sizes(client: aioredis.Redis, keys: Keys) -> list[int]:
    return [await client.xlen(keys.log(p)) for p in keys.all_partitions()]


@pytest.mark.parametrize("depth", [250, 300, 5000])
async def test_a_deeply_nested_spec_is_refused_with_its_path_and_the_board_still_serves(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys, depth: int
) -> None:
    before = await log_sizes(client, keys)
    r = await api.post("/api/v2/tasks", content=body_with_spec(depth))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert f"{MAX_DEPTH}" in error["reason"]
    if depth < 1000:  # deeper than the JSON parser goes: no path, but the same refusal
        # The body is level 1, `spec` level 2: the first level past the limit is named.
        assert error["path"] == "spec" + ".a" * (MAX_DEPTH - 1)
    assert await log_sizes(client, keys) == before
    board = await api.get("/api/v2/tasks/board", params={"project": "default"})
    assert board.status_code == 200


async def test_a_spec_at_the_depth_limit_is_stored_and_shown(api: httpx.AsyncClient) -> None:
    # The body is level 1 and `spec` level 2: its innermost object is at level 32.
    r = await api.post("/api/v2/tasks", json={**TASK, "spec": nested(MAX_DEPTH - 1)})
    assert r.status_code == 201, r.text
    board = await api.get("/api/v2/tasks/board", params={"project": "default"})
    assert board.status_code == 200 and board.json()["total"] == 1
    r = await api.post("/api/v2/tasks", json={**TASK, "spec": nested(MAX_DEPTH)})
    assert r.status_code == 422


async def test_a_deep_job_payload_is_refused_not_a_server_error(api: httpx.AsyncClient) -> None:
    args = b'{"a":' * 1000 + b"1" + b"}" * 1000
    body = b'{"type":"task","payload":{"repository":"acme/app","task":{"instructions":"x",'
    body += b'"skill":{"args":' + args + b"}}}}"
    r = await api.post("/api/queue/jobs", content=body)
    assert r.status_code == 422, r.text
    assert f"{MAX_DEPTH}" in r.json()["errors"][0]["reason"]


async def test_a_deep_array_is_refused_like_a_deep_object(api: httpx.AsyncClient) -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    r = await api.post("/api/v2/tasks", content=orjson.dumps({**TASK, "spec": {"x": deep}}))
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "spec.x" + "[0]" * (MAX_DEPTH - 2)


async def test_a_secret_key_is_not_echoed_in_a_depth_refusal(api: httpx.AsyncClient) -> None:
    token = "ghp_" + "b" * 36
    body = {**TASK, "spec": {token: nested(100)}}
    r = await api.post("/api/v2/tasks", content=orjson.dumps(body))
    assert r.status_code == 422 and token not in r.text


@pytest.fixture
async def small_api(
    settings: Settings, client: aioredis.Redis, api: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with CAIRN_MAX_BODY_BYTES at 4 KiB (the `api` fixture stores the token)."""
    app = create_app(dataclasses.replace(settings, max_body_bytes=4096), client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cairn", headers=dict(api.headers)
    ) as c:
        yield c


async def test_a_body_over_the_limit_is_413_by_its_content_length(
    small_api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys
) -> None:
    before = await log_sizes(client, keys)
    body = orjson.dumps({**TASK, "description": "x" * 5000})
    r = await small_api.post("/api/v2/tasks", content=body)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "body_too_large" and "4096" in r.json()["detail"]
    assert await log_sizes(client, keys) == before


async def test_a_streamed_body_is_cut_off_at_the_limit(small_api: httpx.AsyncClient) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "t", "task_type": "feature", "priority": 1, "description": "'
        for _ in range(1000):  # about 1 MB, with no Content-Length
            sent.append(1024)
            yield b"x" * 1024
        yield b'"}'

    r = await small_api.post("/api/v2/tasks", content=chunks())
    assert r.status_code == 413, r.text
    assert sum(sent) <= 4096 + 1024  # stopped reading within a chunk of the limit


async def test_a_body_just_under_the_limit_is_read(small_api: httpx.AsyncClient) -> None:
    body = orjson.dumps({**TASK, "description": "x" * 3900})
    assert len(body) <= 4096
    r = await small_api.post("/api/v2/tasks", content=body)
    assert r.status_code == 201, r.text


async def test_the_default_limit_refuses_a_20_mb_spec(api: httpx.AsyncClient) -> None:
    body = orjson.dumps({**TASK, "spec": {"text": "x" * 20_000_000}})
    r = await api.post("/api/v2/tasks", content=body)
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v2/tasks", {**TASK, "spec": {"text": "x" * MAX_SPEC_BYTES}}, "spec"),
        ("/api/v2/tasks", {**TASK, "title": "x" * 301}, "title"),
        ("/api/v2/tasks", {**TASK, "description": "x" * 20_001}, "description"),
        (
            "/api/queue/jobs",
            {"type": "task", "payload": {**PAYLOAD, "task": {"instructions": "x" * 100_001}}},
            "payload.task.instructions",
        ),
        (
            "/api/queue/jobs",
            {"type": "task", "payload": {**PAYLOAD, "pad": ["x" * 60_000] * 5}},
            "payload",
        ),
        ("/api/v2/quick-runs", {"prompt": "x" * 20_001}, "prompt"),
    ],
)
async def test_oversized_fields_are_refused_with_their_path(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    r = await api.post(path, json=body)
    assert r.status_code == 422, r.text
    assert field in [e["path"] for e in r.json()["errors"]]


async def test_a_transition_reason_is_bounded(api: httpx.AsyncClient) -> None:
    task = (await api.post("/api/v2/tasks", json=TASK)).json()
    r = await api.post(
        f"/api/v2/tasks/{task['id']}/transition", json={"to": "ready", "reason": "x" * 2001}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "reason"


async def test_a_page_of_tasks_stays_within_its_byte_budget(api: httpx.AsyncClient) -> None:
    spec = {"text": "x" * (MAX_SPEC_BYTES - 100)}
    count = MAX_PAGE_BYTES // MAX_SPEC_BYTES + 3
    for i in range(count):
        r = await api.post("/api/v2/tasks", json={**TASK, "title": f"t{i}", "spec": spec})
        assert r.status_code == 201, r.text
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        r = await api.get("/api/v2/tasks", params=params)
        assert r.status_code == 200 and len(r.content) <= MAX_PAGE_BYTES + 4096
        seen += [t["title"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"t{i}" for i in range(count))


async def test_a_page_of_jobs_stays_within_its_byte_budget(api: httpx.AsyncClient) -> None:
    pad = {"text": "y" * 60_000}
    count = MAX_PAGE_BYTES // (2 * 60_000) + 3  # the view holds payload and normalized form
    for _ in range(count):
        payload = {**PAYLOAD, "task": {"instructions": "x", "skill": {"args": pad}}}
        r = await api.post("/api/queue/jobs", json={"type": "task", "payload": payload})
        assert r.status_code == 201, r.text
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        r = await api.get("/api/queue/jobs", params=params)
        assert r.status_code == 200 and len(r.content) <= MAX_PAGE_BYTES + 4096
        seen += [j["id"] for j in r.json()["items"]]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == count


@pytest.mark.parametrize("body", [b"\x0c", b"\x0b{}", b"\x00"])
async def test_a_body_that_is_not_json_is_refused_not_read_as_empty(
    api: httpx.AsyncClient, client: aioredis.Redis, keys: Keys, body: bytes
) -> None:
    # JSON's whitespace is space, tab, CR and LF: a form feed is not an empty body.
    before = await log_sizes(client, keys)
    r = await api.post("/api/queue/jobs", content=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "body"
    assert await log_sizes(client, keys) == before
