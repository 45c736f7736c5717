"""What every route needs, built once per app: settings, the store, the read models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from cairn.commands.runner import CommandResult
from cairn.commands.settings import Settings
from cairn.domain.credentials import ensure_no_credentials
from cairn.domain.errors import ValidationFailed
from cairn.domain.task_spec import parse_model
from cairn.projections.board import NAME as BOARD
from cairn.projections.board import Board
from cairn.projections.positions import PositionWatcher
from cairn.projections.queue import Queue
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore

M = TypeVar("M", bound=BaseModel)


@dataclass
class Context:
    settings: Settings
    client: aioredis.Redis
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
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValidationFailed(
            "the body is not valid JSON", [{"path": "body", "reason": str(e)}]
        ) from None


async def read_body(request: Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed(
            "the body must be a JSON object", [{"path": "body", "reason": "not an object"}]
        )
    # Credentials anywhere in a body are refused before anything is parsed, stored or echoed.
    for name, value in data.items():
        ensure_no_credentials(value, name)
    return parse_model(model, data)


def min_position(request: Request) -> str:
    """The log position a reader asks to see (its own earlier write), as a header or query."""
    return request.headers.get("cairn-position") or request.query_params.get("min_position", "")


IDEMPOTENT: set[str] = set()  # the endpoints that honour an Idempotency-Key
E = TypeVar("E")


def idempotent(endpoint: E) -> E:
    """Mark an endpoint that honours Idempotency-Key (the OpenAPI document offers it)."""
    IDEMPOTENT.add(getattr(endpoint, "__name__", ""))
    return endpoint


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= 200):
        errors = [{"path": "headers.Idempotency-Key", "reason": "length 1 to 200"}]
        raise ValidationFailed("Idempotency-Key must be 1 to 200 characters", errors)
    return key


def position_headers(result: CommandResult) -> dict[str, str]:
    """`Cairn-Position`, where a reader waits for this write (none if nothing was written)."""
    return {"Cairn-Position": result.position} if result.position else {}


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
