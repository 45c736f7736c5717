from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from api.app import create_app
from api.auth import store_token
from commands.settings import Settings
from projections.board import BoardProjection
from projections.runner import run_projections
from streams.keys import Keys


@pytest.fixture
async def projector(client: aioredis.Redis, keys: Keys) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projections(client, keys, [BoardProjection()], stop, lease_ms=3000)
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
