"""Bearer tokens: stored as SHA-256 hashes, never in clear; every /api/* route needs one."""

from __future__ import annotations

import hashlib
import secrets
import time

import orjson
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.api.problems import problem
from cairn.streams.keys import Keys


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "cairn_" + secrets.token_urlsafe(32)


async def store_token(client: aioredis.Redis, keys: Keys, token: str, name: str, role: str) -> None:
    record = orjson.dumps({"name": name, "role": role, "created": time.time()})
    await client.hset(keys.tokens(), hash_token(token), record)


async def has_admin_token(client: aioredis.Redis, keys: Keys) -> bool:
    for raw in await client.hvals(keys.tokens()):
        if orjson.loads(raw).get("role") == "admin":
            return True
    return False


class BearerAuth:
    """ASGI middleware: `/api/*` needs a known bearer token; the actor name goes into scope."""

    def __init__(
        self, app: ASGIApp, client: aioredis.Redis, keys: Keys, cache_s: float = 10
    ) -> None:
        self.app, self.client, self.keys, self.cache_s = app, client, keys, cache_s
        self._cache: dict[str, tuple[float, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode(errors="replace")
        scheme, _, token = header.partition(" ")
        actor = await self._actor(token.strip()) if scheme.lower() == "bearer" else None
        if actor is None:
            response = problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <token> with a valid token",
                scope["path"],
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="cairn"'
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, send)

    async def _actor(self, token: str) -> str | None:
        if not token:
            return None
        digest = hash_token(token)
        hit = self._cache.get(digest)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        raw = await self.client.hget(self.keys.tokens(), digest)
        if raw is None:
            return None
        name = str(orjson.loads(raw)["name"])
        self._cache[digest] = (time.monotonic() + self.cache_s, name)
        return name
