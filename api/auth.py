"""Bearer tokens: stored as SHA-256 hashes, never in clear; every /api/* route needs one."""

from __future__ import annotations

import hashlib
import secrets
import time

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.api.problems import problem
from cairn.domain.errors import InfrastructureError, ValidationFailed
from cairn.streams.connection import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys

MIN_TOKEN_LENGTH = 24
MIN_TOKEN_VARIETY = 10  # distinct characters: a hex token has about 14, "aaaa..." has 1
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
RETRY_AFTER_S = 2


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "cairn_" + secrets.token_urlsafe(32)


def check_admin_token(token: str) -> None:
    """Refuse a token that could be guessed, saying why and how to make a good one."""
    if len(token) < MIN_TOKEN_LENGTH:
        why = f"has {len(token)} character(s); it needs at least {MIN_TOKEN_LENGTH}"
    elif len(set(token)) < MIN_TOKEN_VARIETY:
        why = f"uses only {len(set(token))} different characters; it needs {MIN_TOKEN_VARIETY}"
    elif any(c.isspace() or not c.isprintable() for c in token):
        why = "has spaces or control characters"
    else:
        return
    reason = f"{why}: make one with `{MAKE_ONE}` (or leave it unset: `cairn up` makes one)"
    raise ValidationFailed(
        "CAIRN_ADMIN_TOKEN is too weak", [{"path": "CAIRN_ADMIN_TOKEN", "reason": reason}]
    )


async def store_token(client: Client, keys: Keys, token: str, name: str, role: str) -> None:
    """Store `token` under `name`, replacing the token stored under that name before (so a new
    CAIRN_ADMIN_TOKEN revokes the old one)."""
    digest = hash_token(token)
    record = orjson.dumps({"name": name, "role": role, "created": time.time()})
    stale = [
        field
        for field, raw in (await client.hgetall(keys.tokens())).items()
        if orjson.loads(raw).get("name") == name and text(field) != digest
    ]
    async with client.pipeline(transaction=True) as pipe:
        if stale:
            pipe.hdel(keys.tokens(), *stale)
        pipe.hset(keys.tokens(), digest, record)
        await pipe.execute()


async def has_admin_token(client: Client, keys: Keys) -> bool:
    for raw in await client.hvals(keys.tokens()):
        if orjson.loads(raw).get("role") == "admin":
            return True
    return False


class BearerAuth:
    """ASGI middleware: `/api/*` needs a known bearer token; the actor name goes into scope."""

    def __init__(
        self, app: ASGIApp, client: Client, keys: Keys, cache_s: float = 10
    ) -> None:
        self.app, self.client, self.keys, self.cache_s = app, client, keys, cache_s
        self._cache: dict[str, tuple[float, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode(errors="replace")
        scheme, _, token = header.partition(" ")
        try:
            actor = await self._actor(token.strip()) if scheme.lower() == "bearer" else None
        except InfrastructureError as e:
            detail = f"the store did not answer ({type(e).__name__}); try again shortly"
            response = problem(503, "store_unavailable", detail, scope["path"])
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            await response(scope, receive, send)
            return
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
