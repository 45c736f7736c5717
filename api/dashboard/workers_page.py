"""Workers (`/workers`): who is connected, with what, running what; the system-wide pause
(drain, quiesce, resume) with a required reason; queue depth per capability signature; and
how far each projection is behind the log."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context
from cairn.api.dashboard.lag import projection_lag, queue_depths
from cairn.api.dashboard.render import FieldErrors, Form, action, done, page, render
from cairn.api.roles import ADMIN
from cairn.api.workers import PauseBody
from cairn.domain.errors import CairnError
from cairn.domain.tasks.spec import parse_model
from cairn.streams.registry import Registry

MODES = (
    ("drain", "Drain: no new claims; running jobs finish"),
    ("quiesce", "Quiesce: no new claims; running jobs hold at their next step"),
    ("off", "Resume: workers claim again"),
)


async def workers_view(request: Request) -> dict[str, Any]:
    ctx = context(request)
    registry = Registry(ctx.client, ctx.keys)
    workers, lag = await asyncio.gather(registry.workers(include_stale=True), projection_lag(ctx))
    depths = await queue_depths(ctx, workers)
    return {"workers": workers, "lag": lag, "depths": depths, "modes": MODES}


@page
async def workers_page(request: Request) -> Response:
    view = await workers_view(request)
    return await render(request, "workers.html", {**view, "errors": FieldErrors(), "values": {}})


async def _refused(request: Request, form: Form, error: CairnError) -> Response:
    view = await workers_view(request)
    values = {"mode": form.get("mode"), "reason": form.get("reason")}
    errors = FieldErrors(error, lambda path: path.split(".")[-1])
    return await render(request, "workers.html", {**view, "errors": errors, "values": values}, 422)


@action(on_error=_refused, needs=ADMIN)  # as POST /api/system/worker-pause
async def set_pause(request: Request, form: Form) -> Response:
    """As POST /api/system/worker-pause: the mode, with why."""
    body = parse_model(PauseBody, {"mode": form.get("mode"), "reason": form.get("reason")})
    ctx = context(request)
    await Registry(ctx.client, ctx.keys).set_pause_mode(body.mode, body.reason, actor(request))
    return done(request, "/workers", "pause_set")
