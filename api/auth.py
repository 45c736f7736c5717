"""Bearer tokens: stored as SHA-256 hashes, never in clear, each with a name (the actor every
event it causes names), a role (api/roles.py) and an optional expiry; every /api/* route needs
a live one. Revoking a token deletes its record: the next request with it is refused."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.api.problems import problem
from cairn.api.roles import ADMIN, SIGNED_PATHS, check_role
from cairn.domain.errors import CairnError, InfrastructureError, ValidationFailed
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys

MIN_TOKEN_LENGTH = 24
MIN_TOKEN_VARIETY = 10  # distinct characters: a hex token has about 14, "aaaa..." has 1
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
RETRY_AFTER_S = 2
# A token's name is the actor of every event it causes: plain, short, one line.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# The bearer paths: the API, and the metrics an operator's Prometheus scrapes with a token.
PROTECTED = ("/api/", "/metrics")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What is stored of a token (its hash is the field it is stored under)."""

    name: str
    role: str
    created: float
    expires: float | None = None  # epoch seconds; None: never
    grants: tuple[str, ...] = ()  # rights beyond the role (GRANTS), e.g. takeover

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) >= self.expires

    def view(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "created": _iso(self.created),
                "expires": _iso(self.expires) if self.expires else None,
                "expired": self.expired(), "grants": list(self.grants)}  # fmt: skip


GRANTS = ("takeover",)  # takeover: an operator may take a running job over (a live session)


def check_grants(grants: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [g for g in grants if g not in GRANTS]
    if unknown:
        raise CairnError(f"unknown grant {unknown[0]!r}: one of {', '.join(GRANTS)}")
    return tuple(dict.fromkeys(grants))


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


def check_token_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        reason = "1-64 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit"
        errors = [{"path": "name", "reason": reason}]
        raise ValidationFailed(f"{name!r} is not a token name", errors)
    return name


def parse_record(raw: bytes | str) -> TokenRecord:
    values = orjson.loads(raw)
    expires = values.get("expires")
    return TokenRecord(
        str(values["name"]), str(values.get("role", "")), float(values.get("created", 0)),
        float(expires) if expires else None, tuple(str(g) for g in values.get("grants") or ()),
    )


def _encode(record: TokenRecord) -> bytes:
    return orjson.dumps({"name": record.name, "role": record.role, "created": record.created,
                         "expires": record.expires, "grants": list(record.grants)})  # fmt: skip


async def store_token(
    client: Client, keys: Keys, token: str, name: str, role: str, expires: float | None = None,
    grants: tuple[str, ...] = (),
) -> None:
    """Store `token` under `name`, replacing the token stored under that name before (so a new
    CAIRN_ADMIN_TOKEN revokes the old one)."""
    digest = hash_token(token)
    record = _encode(TokenRecord(name, role, time.time(), expires, check_grants(grants)))
    stale = [f for f in await _fields_named(client, keys, name) if text(f) != digest]
    async with client.pipeline(transaction=True) as pipe:
        if stale:
            pipe.hdel(keys.tokens(), *stale)
        pipe.hset(keys.tokens(), digest, record)
        await pipe.execute()


async def create_token(
    client: Client, keys: Keys, name: str, role: str, expires: float | None = None,
    grants: tuple[str, ...] = (),
) -> str:
    """A new token named `name` with `role`; returned once, stored hashed. A name in use is
    refused: it is the actor in the log, so it must say which token did what."""
    check_token_name(name)
    check_role(role)
    check_grants(grants)
    if await _fields_named(client, keys, name):
        raise CairnError(f"a token named {name!r} exists: revoke it first "
                         f"(`cairn token revoke {name}`) or choose another name")  # fmt: skip
    token = new_token()
    await client.hset(keys.tokens(), hash_token(token), _encode(
        TokenRecord(name, role, time.time(), expires, grants)))  # fmt: skip
    return token


async def list_tokens(client: Client, keys: Keys) -> list[TokenRecord]:
    """Every stored token's record (expired ones too, marked so), by name."""
    records = [parse_record(raw) for raw in await client.hvals(keys.tokens())]
    return sorted(records, key=lambda r: r.name)


async def revoke_token(client: Client, keys: Keys, name: str) -> int:
    """Delete the token(s) named `name`; how many there were."""
    found = await _fields_named(client, keys, name)
    if found:
        await client.hdel(keys.tokens(), *found)
    return len(found)


async def find_token(client: Client, keys: Keys, digest: str) -> TokenRecord | None:
    """The live record stored under a token's hash: None when unknown, revoked or expired
    (what the dashboard's sessions check too)."""
    raw = await client.hget(keys.tokens(), digest)
    if raw is None:
        return None
    record = parse_record(raw)
    return None if record.expired() else record


async def has_admin_token(client: Client, keys: Keys) -> bool:
    return any(r.role == ADMIN and not r.expired() for r in await list_tokens(client, keys))


class BearerAuth:
    """ASGI middleware: `/api/*` and `/metrics` need a live bearer token (401 otherwise); the
    token's name (the actor) and role go into the scope for the route's role check. Every
    request reads the token's record, so a revoked or expired token is refused at once."""

    def __init__(self, app: ASGIApp, client: Client, keys: Keys) -> None:
        self.app, self.client, self.keys = app, client, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        # A signed route (GitHub's webhook) checks the delivery's signature instead.
        if scope["type"] != "http" or not path.startswith(PROTECTED) or \
                path.startswith(SIGNED_PATHS):  # fmt: skip
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode(errors="replace")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        try:
            record = await self._actor(token) if scheme.lower() == "bearer" else None
        except InfrastructureError as e:
            detail = f"the store did not answer ({type(e).__name__}); try again shortly"
            response = problem(503, "store_unavailable", detail, scope["path"])
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            await response(scope, receive, send)
            return
        if record is None:
            response = problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <token> with a valid token (not revoked, not "
                "expired; `cairn token create` makes one)",
                scope["path"],
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="cairn"'
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["actor"], state["role"], state["grants"] = record.name, record.role, record.grants
        await self.app(scope, receive, send)

    async def _actor(self, token: str) -> TokenRecord | None:
        return await find_token(self.client, self.keys, hash_token(token)) if token else None


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def duration_s(value: str) -> int | None:
    """A duration as a command line gives it (`90m`, `12h`, `30d`, `8w`, `0s`) in seconds;
    None if it is not one."""
    match = re.fullmatch(r"([0-9]{1,6})([smhdw])", value.strip())
    return int(match[1]) * _UNITS_S[match[2]] if match else None


def parse_expiry(value: str, now: float | None = None) -> float:
    """`--expires`: a duration from now (`90m`, `12h`, `30d`, `8w`) or an ISO 8601 date or
    time (UTC unless it says otherwise); epoch seconds."""
    now = time.time() if now is None else now
    seconds = duration_s(value)
    if seconds is not None:
        return now + seconds
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(f"--expires {value!r} is not a duration or a date", [{
            "path": "--expires",
            "reason": "a duration such as 90m, 12h, 30d or 8w, or a date such as 2027-01-31"}],
        ) from None  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() <= now:
        raise ValidationFailed("--expires is in the past",
                               [{"path": "--expires", "reason": "give a later time"}])  # fmt: skip
    return moment.timestamp()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _fields_named(client: Client, keys: Keys, name: str) -> list[bytes | str]:
    """The hash fields (token digests) of the tokens named `name`."""
    stored = await client.hgetall(keys.tokens())
    return [field for field, raw in stored.items() if parse_record(raw).name == name]
