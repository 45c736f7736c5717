"""Dashboard sessions: an API token, checked once at login against the stored token hashes (as
BearerAuth does), becomes a signed, HttpOnly, SameSite=Strict cookie naming a session record in
the store. Every form post carries a CSRF token derived from the session. A session acts with
its token's name and role (api/roles.py), read again on every request: a token revoked,
expired or given another role ends or changes its sessions at once.

The signing secret is per install, kept in the store (`<prefix>:sys:dashboard-secret`, made on
first use), so every API process of the install shares it and deleting it signs everyone out.
A session record lives in the store for SESSION_S; logout deletes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cairn.api.auth import TokenRecord, find_token, hash_token
from cairn.api.context import context
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys

COOKIE = "cairn_session"
LOGIN_COOKIE = "cairn_login"  # a nonce the login form's CSRF token is bound to
SESSION_S = 12 * 3600
LOGIN_S = 3600
SECRET_CACHE_S = 60.0
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    name: str
    role: str
    csrf: str
    grants: tuple[str, ...] = ()  # its token's rights beyond the role (a takeover)


class Secrets:
    """The install's signing secret, read from the store at most once a minute."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.key = client, keys.system("dashboard-secret")
        self._value: bytes | None = None
        self._until = 0.0

    async def get(self) -> bytes:
        if self._value is None or time.monotonic() > self._until:
            await self.client.set(self.key, secrets.token_hex(32), nx=True)
            raw = await self.client.get(self.key)
            self._value = text(raw).encode()
            self._until = time.monotonic() + SECRET_CACHE_S
        return self._value


def secrets_of(request: Request) -> Secrets:
    state = request.app.state
    if not hasattr(state, "dashboard_secrets"):
        ctx = context(request)
        state.dashboard_secrets = Secrets(ctx.client, ctx.keys)
    found: Secrets = state.dashboard_secrets
    return found


def sign(secret: bytes, purpose: str, value: str) -> str:
    mac = hmac.new(secret, f"{purpose}|{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _session_key(keys: Keys, sid: str) -> str:
    return keys.system(f"session:{sid}")


async def token_owner(request: Request, token: str) -> tuple[TokenRecord, str] | None:
    """The live record of an API token (not revoked, not expired) and its hash, or None."""
    ctx = context(request)
    digest = hash_token(token)
    record = await find_token(ctx.client, ctx.keys, digest)
    return (record, digest) if record is not None else None


async def open_session(request: Request, response: Response, digest: str) -> None:
    """Record a new session of the token stored under `digest` and set its cookie."""
    ctx = context(request)
    sid = secrets.token_urlsafe(24)
    record = orjson.dumps({"digest": digest, "created": time.time()})
    await ctx.client.set(_session_key(ctx.keys, sid), record, ex=SESSION_S)
    secret = await secrets_of(request).get()
    value = f"{sid}.{sign(secret, 'session', sid)}"
    _set_cookie(request, response, COOKIE, value, SESSION_S)
    response.delete_cookie(LOGIN_COOKIE, path="/")


async def close_session(request: Request, response: Response) -> None:
    ctx = context(request)
    session = await current_session(request)
    if session is not None:
        await ctx.client.delete(_session_key(ctx.keys, session.sid))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


async def current_session(request: Request) -> Session | None:
    """The request's session: a cookie signed by this install, naming a live record whose
    token is still stored."""
    cached: Session | None = request.scope.get("cairn.session")
    if cached is not None:
        return cached
    sid, _, mac = request.cookies.get(COOKIE, "").partition(".")
    if not sid or not mac:
        return None
    secret = await secrets_of(request).get()
    if not hmac.compare_digest(mac, sign(secret, "session", sid)):
        return None
    ctx = context(request)
    raw = await ctx.client.get(_session_key(ctx.keys, sid))
    if raw is None:
        return None
    token = await find_token(ctx.client, ctx.keys, str(orjson.loads(raw)["digest"]))
    if token is None:
        await ctx.client.delete(_session_key(ctx.keys, sid))
        return None
    session = Session(sid, token.name, token.role, sign(secret, "csrf", sid), token.grants)
    request.scope["cairn.session"] = session
    return session


async def login_csrf(request: Request) -> tuple[str, str | None]:
    """The login form's CSRF token, bound to the nonce in the login cookie; and a new nonce
    to set (with set_login_nonce) when the request had none."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    fresh = None
    if len(nonce) < 16:
        nonce = fresh = secrets.token_urlsafe(16)
    secret = await secrets_of(request).get()
    return sign(secret, "login", nonce), fresh


def set_login_nonce(request: Request, response: Response, nonce: str) -> None:
    _set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_S)


def csrf_matches(sent: str, expected: str) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(sent, expected)


def same_origin(request: Request) -> bool:
    """A browser's Origin (sent on every POST) must be this server; none is not a browser."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # the CSRF token is still required
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
