"""Workers and the system switches that act on them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import actor, context, json_response, read_body
from cairn.api.roles import ADMIN, VIEWER
from cairn.api.schemas import ref
from cairn.domain.limits import MAX_REASON
from cairn.domain.tasks.spec import Visible
from cairn.streams.registry import Registry


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    mode: Literal["drain", "quiesce", "off"]
    reason: Annotated[
        str, Field(min_length=1, max_length=MAX_REASON, description="why (shown to everyone)"),
        *Visible,
    ]  # fmt: skip


def registry(request: Request) -> Registry:
    ctx = context(request)
    return Registry(ctx.client, ctx.keys)


async def list_workers(request: Request) -> Response:
    """Registered workers: id, capabilities, host, started, last seen, running jobs."""
    known = registry(request)
    workers, pause = await asyncio.gather(known.workers(include_stale=True), known.pause_state())
    return json_response({"workers": workers, "pause": pause["mode"], "pauseState": pause})


async def post_worker_pause(request: Request) -> Response:
    """drain: no new claims; quiesce: also hold running jobs at their next checkpoint; off.
    Each with a reason, kept beside the mode and shown on every dashboard page."""
    body = await read_body(request, PauseBody)
    await registry(request).set_pause_mode(body.mode, body.reason, actor(request))
    return json_response({"mode": body.mode, "reason": body.reason})


BODIES: dict[str, type[BaseModel]] = {"post_worker_pause": PauseBody}
RESPONSES: dict[str, dict[str, Any]] = {
    "list_workers": {"200": ref("Workers")},
    "post_worker_pause": {"200": ref("PauseMode")},
}
ROUTES = [
    Route("/api/queue/workers", list_workers, methods=["GET"]),
    Route("/api/system/worker-pause", post_worker_pause, methods=["POST"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "list_workers": VIEWER,
    "post_worker_pause": ADMIN,
}
