"""While the store is down every route answers 503 problem+json with Retry-After (reads,
writes, auth, readiness), and the API recovers by itself once the store is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.commands.settings import Settings
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, start_server


@pytest.fixture
async def down_api(
    tmp_path: Path, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, EmbeddedServer]]:
    server = start_server(tmp_path / "redis", persist=True)
    settings = replace(settings, redis_url=server.url)
    client = connect(server.url)
    keys = Keys(settings.prefix, settings.partitions)
    assert settings.admin_token
    await store_token(client, keys, settings.admin_token, "admin", "admin")
    app = create_app(settings, client)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cairn",
                                 headers=headers) as http:  # fmt: skip
        yield http, server
    await client.aclose()
    server.stop()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "store_unavailable"


async def test_every_kind_of_route_answers_503_while_the_store_is_down(
    down_api: tuple[httpx.AsyncClient, EmbeddedServer],
) -> None:
    http, server = down_api
    assert (await http.get("/api/v2/tasks/board?project=default")).status_code == 200
    port, data = server.port, server.data_dir
    server.stop()
    assert_unavailable(await http.get("/api/v2/tasks/board?project=default"))
    assert_unavailable(await http.get("/api/queue/jobs"))
    body = {"title": "t", "task_type": "chore", "priority": 1}
    assert_unavailable(await http.post("/api/v2/tasks", json=body))
    assert_unavailable(await http.get("/readyz"))
    stranger = {"Authorization": "Bearer an-uncached-token-of-thirty-two-chars"}
    assert_unavailable(await http.get("/api/v2/projects", headers=stranger))

    restarted = start_server(data, port=port, persist=True)
    server.process = restarted.process
    deadline = time.monotonic() + 10
    while (await http.get("/api/v2/tasks/board?project=default")).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover"
        await asyncio.sleep(0.1)
    assert (await http.post("/api/v2/tasks", json=body)).status_code in (201, 202)
