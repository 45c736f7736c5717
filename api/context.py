"""What every route needs, built once per app: settings, the store, the read models."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from cairn.api.problems import BodyTooLarge
from cairn.commands.runner import CommandResult
from cairn.commands.settings import Settings
from cairn.domain.credentials import (
    credential_kinds,
    ensure_no_credentials,
    safe_key,
)
from cairn.domain.errors import NotFound, ValidationFailed
from cairn.domain.limits import MAX_ID_ECHO, depth_reason, too_deep
from cairn.domain.paths import join_path
from cairn.domain.tasks.spec import parse_model
from cairn.projections.jobs.queue import Queue
from cairn.projections.positions import PositionWatcher
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import Board
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore

M = TypeVar("M", bound=BaseModel)


@dataclass
class Context:
    settings: Settings
    client: Client
    keys: Keys
    store: EventStore
    board: Board
    queue: Queue

    watchers: dict[str, PositionWatcher] = field(default_factory=dict)

    async def caught_up(self, position: str, projection: str = BOARD) -> bool:
        """Wait (bounded) until a projection has applied `position`: read-your-writes."""
        if projection not in self.watchers:
            self.watchers[projection] = PositionWatcher(self.client, self.keys, projection)
        timeout = self.settings.read_your_writes_timeout_s
        return await self.watchers[projection].wait(position, timeout)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def actor(request: Request) -> str:
    return str(request.scope.get("state", {}).get("actor", "anonymous"))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def read_json(request: Request) -> Any:
    """The body as JSON: at most CAIRN_MAX_BODY_BYTES (413 past it, read no further) and at
    most MAX_DEPTH levels deep (422 naming where), checked before anything else reads it."""
    raw = await read_limited(request, context(request).settings.max_body_bytes)
    if not raw.strip(b" \t\r\n"):  # JSON's whitespace only: a form feed is not JSON
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth limit" in str(e):  # deeper than the parser goes
            raise ValidationFailed(
                "the body is nested too deeply", [{"path": "body", "reason": depth_reason()}]
            ) from None
        raise ValidationFailed(
            "the body is not valid JSON", [{"path": "body", "reason": str(e)}]
        ) from None
    loc = too_deep(data)
    if loc is not None:
        path = join_path("", loc) or "body"
        raise ValidationFailed(
            f"{path} is nested too deeply", [{"path": path, "reason": depth_reason()}]
        )
    return data


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to pass `limit` bytes: by its declared
    Content-Length, else by what has arrived."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the body is larger than {limit} bytes (CAIRN_MAX_BODY_BYTES); send less, "
        "or put large content in the repository and refer to it",
        max_body_bytes=limit,
    )


async def read_body(request: Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed(
            "the body must be a JSON object", [{"path": "body", "reason": "not an object"}]
        )
    # Credentials anywhere in a body are refused before anything is parsed, stored or echoed.
    for name, value in data.items():
        ensure_no_credentials(value, safe_key(name))
    return parse_model(model, data)


def path_id(request: Request, kind: str, name: str | None = None) -> str:
    """The id in the path parameter `name` (default `<kind>_id`), if it is a well-formed
    `kind` id of this install; else 404 naming the kind (and the id only if short and safe)."""
    value = str(request.path_params[name or f"{kind}_id"])
    if not is_id_of(context(request).keys, kind, value):
        raise NotFound(f"{shown_id(value)} is not a {kind} id ({ID_SHAPE.format(kind=kind)})")
    return value


def is_id_of(keys: Keys, kind: str, value: str) -> bool:
    """Whether `value` is an id of `kind` whose partition this install has."""
    return value.startswith(f"{kind}-") and keys.is_aggregate_id(value)


def shown_id(value: str) -> str:
    """An id as an answer may repeat it: quoted if short and plain, else described."""
    if len(value) <= MAX_ID_ECHO and _PLAIN.fullmatch(value) and not credential_kinds(value):
        return repr(value)
    return f"the given id ({len(value)} characters)"


ID_SHAPE = "{kind} ids look like {kind}-NN-<26 letters and digits>, NN a partition of this install"
ID_PATTERN = r"^{kind}-[0-9]{{2,4}}-[0-9a-z]{{16,40}}$"  # the shape Keys.new_id makes
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]*")
# A task id in a body: its shape is checked here (422 naming the field); whether the task
# exists is the command's to say (404).
TaskRef = Annotated[str, Field(max_length=64, pattern=ID_PATTERN.format(kind="task"))]


def read_query(request: Request, model: type[M]) -> M:
    """The query parameters as `model` declares them (the OpenAPI document shows the same
    model); a ValidationFailed names each `query.<name>`."""
    return parse_model(model, dict(request.query_params), root="query")


def min_position(request: Request, keys: Keys) -> str:
    """The log position a reader asks to see (its own earlier write), as a header or query:
    `<partition>:<entry id>` as Cairn-Position gave it."""
    header = request.headers.get("cairn-position")
    value = header if header is not None else request.query_params.get("min_position")
    if value is None:
        return ""
    if not re.fullmatch(position_pattern(keys.partitions), value):
        where = "headers.Cairn-Position" if header else "query.min_position"
        reason = "not a position this API gave (<partition>:<entry id>, from Cairn-Position)"
        raise ValidationFailed(f"{where} is not valid", [{"path": where, "reason": reason}])
    return value


def position_pattern(partitions: int) -> str:
    """What a position of an install with `partitions` partitions looks like."""
    numbers = "|".join(str(p) for p in range(partitions))
    return f"^(?:{numbers}):[0-9]{{1,15}}-[0-9]{{1,15}}$"


IDEMPOTENT: set[str] = set()  # the endpoints that honour an Idempotency-Key
Endpoint = Callable[[Request], Awaitable[Response]]


def idempotent(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint that honours Idempotency-Key (the OpenAPI document offers it); the
    header is checked before the endpoint runs, whatever path it takes."""

    @functools.wraps(endpoint)
    async def checked(request: Request) -> Response:
        idempotency_key(request)
        return await endpoint(request)

    IDEMPOTENT.add(endpoint.__name__)
    return checked


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        reason = "1 to 200 visible ASCII characters (no spaces)"
        errors = [{"path": "headers.Idempotency-Key", "reason": reason}]
        raise ValidationFailed(f"Idempotency-Key must be {reason}", errors)
    return key


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def position_headers(result: CommandResult) -> dict[str, str]:
    """`Cairn-Position`, where a reader waits for this write (none if nothing was written)."""
    return {"Cairn-Position": result.position} if result.position else {}


async def written(
    request: Request, result: CommandResult, projection: str,
    shown: Callable[[], Awaitable[dict[str, Any] | None]], status: int = 200,
) -> Response:  # fmt: skip
    """What a write answers: `shown()` (the entity as its read model has it) once `projection`
    has applied the write, with `status`; else, or if it is not there, the command result
    (202). Either carries the write's position."""
    ctx = context(request)
    headers = position_headers(result)
    if await ctx.caught_up(result.position, projection):
        view = await shown()
        if view is not None:
            return json_response(view, status, headers)
    return json_response(command_body(result), 202, headers)


def command_body(result: CommandResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "version": result.version,
        "position": result.position,
        "duplicate": result.duplicate,
    }


def event_view(e: Envelope) -> dict[str, Any]:
    """An event as the API shows it (the audit trail)."""
    return {
        "id": e.id,
        "type": e.type,
        "version": e.ver,
        "ts": e.ts,
        "actor": e.actor,
        "correlation_id": e.corr,
        "causation_id": e.cause,
        "schema": e.schema,
        "position": e.position,
        "data": e.data,
    }
