"""Bearer tokens: weak ones refused, a new admin token replaces the old, and a store that is
down is a 503 the client can retry, not a 500 or a dropped connection."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from cairn.api.app import create_app
from cairn.api.auth import check_admin_token, hash_token, new_token, store_token
from cairn.commands.settings import Settings
from cairn.domain.errors import ValidationFailed
from cairn.streams.connection import connect
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.server import start_server


@pytest.mark.parametrize(
    "token",
    ["x", "short-but-varied-9", "a" * 40, "abababababababababababababab", "with space " * 3],
)
def test_a_weak_admin_token_is_refused_with_how_to_make_one(token: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_admin_token(token)
    [error] = refused.value.errors
    assert error["path"] == "CAIRN_ADMIN_TOKEN"
    assert "secrets.token_urlsafe(32)" in error["reason"]


def test_generated_tokens_are_strong_enough() -> None:
    for _ in range(200):
        check_admin_token(new_token())
    check_admin_token("0123456789abcdef0123456789abcdef")  # secrets.token_hex(16)


async def test_a_new_admin_token_replaces_the_old(client: aioredis.Redis, keys: Keys) -> None:
    await store_token(client, keys, "old-Admin-token-0123456789abcdef", "admin", "admin")
    await store_token(client, keys, "worker-token-0123456789abcdefXYZ", "ci", "worker")
    await store_token(client, keys, "new-Admin-token-0123456789abcdef", "admin", "admin")
    stored = await client.hgetall(keys.tokens())
    assert {text(k) for k in stored} == {
        hash_token("new-Admin-token-0123456789abcdef"),
        hash_token("worker-token-0123456789abcdefXYZ"),
    }


async def test_a_store_that_is_down_is_a_503_with_retry_after(tmp_path: Path) -> None:
    server = start_server(tmp_path / "redis", persist=False)
    settings = Settings(redis_url=server.url, prefix="down", partitions=2, data_dir=tmp_path)
    client = connect(server.url)
    try:
        app = create_app(settings, client)
        token = "a-valid-Admin-token-0123456789abcdef"
        await store_token(client, Keys("down", 2), token, "admin", "admin")
        server.stop()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as http:
            got = await http.get("/api/v2/projects", headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 503, got.text
        assert got.headers["content-type"] == "application/problem+json"
        assert int(got.headers["retry-after"]) >= 1
        assert got.json()["code"] == "store_unavailable"
    finally:
        server.stop()
        await client.aclose()
