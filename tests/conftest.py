"""Fixtures: one throwaway embedded server per test session (behind a password, like every
embedded server: connect through `server.url`); a fresh key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from cairn.commands.settings import Settings
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, start_server
from cairn.streams.store import EventStore
from tests.agents.model_server import ModelServer


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    srv = start_server(Path(tmp_path_factory.mktemp("redis")), persist=False)
    yield srv
    srv.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(server: EmbeddedServer, prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=server.url, prefix=prefix, partitions=4, data_dir=tmp_path,
        admin_token="test-Admin-token-0123456789abcdef", read_your_writes_timeout_s=5.0,
    )  # fmt: skip


@pytest.fixture
async def client(server: EmbeddedServer) -> AsyncIterator[aioredis.Redis]:
    conn = connect(server.url)
    yield conn
    await conn.aclose()


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.prefix, settings.partitions)


@pytest.fixture
def store(client: aioredis.Redis, keys: Keys) -> EventStore:
    return EventStore(client, keys)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    """The scripted model server the real agent CLIs talk to (a script per marker, so tests
    share it)."""
    srv = ModelServer().start()
    yield srv
    srv.stop()
