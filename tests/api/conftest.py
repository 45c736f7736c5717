from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.commands.settings import Settings
from cairn.projections.catalog import all_projections
from cairn.projections.projector import run_projections
from cairn.streams.keys import Keys


@pytest.fixture
async def projector(client: aioredis.Redis, keys: Keys) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projections(client, keys, list(all_projections().values()), stop, lease_ms=3000)
    )
    yield
    stop.set()
    await task


@pytest.fixture
async def api(
    settings: Settings, client: aioredis.Redis, keys: Keys, projector: None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, client)
    assert settings.admin_token
    await store_token(client, keys, settings.admin_token, "admin", "admin")
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cairn", headers=headers
    ) as c:
        yield c


@pytest.fixture
async def live_api(
    settings: Settings, client: aioredis.Redis, keys: Keys, projector: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a real uvicorn server on a free port (for streaming responses)."""
    import uvicorn

    from cairn.api.http11 import H11Protocol
    from cairn.streams.server import free_port

    port = free_port()
    app = create_app(settings, client)
    assert settings.admin_token
    await store_token(client, keys, settings.admin_token, "admin", "admin")
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="off", http=H11Protocol)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as c:
        yield c
    server.should_exit = True
    await serving
