"""Schedule routes: create, list, one schedule, pause, resume, delete, and run now."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import (
    actor,
    context,
    idempotency_key,
    idempotent,
    json_response,
    path_id,
    position_headers,
    read_body,
    read_query,
    written,
)
from cairn.api.schemas import (
    BOOLEAN,
    INTEGER,
    NULLABLE_OBJECT,
    NULLABLE_STRING,
    OBJECT,
    STRING,
    ref,
)
from cairn.commands.planning.schedules import (
    create_schedule,
    delete_schedule,
    pause_schedule,
    resume_schedule,
    run_schedule_now,
)
from cairn.commands.runner import CommandResult
from cairn.domain.errors import NotFound
from cairn.domain.limits import MAX_PAGE_ITEMS
from cairn.domain.planning.schedules import Schedule, ScheduleInput, next_fire
from cairn.domain.tasks.spec import Name
from cairn.projections.planning.schedules import NAME as SCHEDULES
from cairn.projections.planning.schedules import Schedules


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    project: Name | None = None
    status: Literal["active", "paused", "deleted"] | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_ITEMS)


def schedule_view(s: Schedule) -> dict[str, Any]:
    at = next_fire(s)
    return {
        "id": s.id, "version": s.version, "project": s.project, "name": s.name, "cron": s.cron,
        "timezone": s.timezone, "status": s.status, "enabled": s.status == "active",
        "job": s.job, "template": s.template, "template_version": s.template_version,
        "inputs": s.inputs, "next_fire_at": at.isoformat().replace("+00:00", "Z") if at else None,
        "last_fire_time": s.last_fire_time, "fire_count": s.fire_count, "fires": s.fires,
        "created_at": s.created_at, "updated_at": s.updated_at,
    }  # fmt: skip


async def _written(request: Request, result: CommandResult, status: int = 200) -> Response:
    async def shown() -> dict[str, Any] | None:
        ctx = context(request)
        found = (await Schedules(ctx.client, ctx.keys).get([result.id])).get(result.id)
        return schedule_view(found) if found is not None else None

    return await written(request, result, SCHEDULES, shown, status)


@idempotent
async def post_schedule(request: Request) -> Response:
    """Create a schedule; its job is checked as a fire would make it before anything is
    written."""
    given = await read_body(request, ScheduleInput)
    ctx = context(request)
    result = await create_schedule(ctx.store, given, ctx.settings.contract(), actor=actor(request),
                                   idempotency_key=idempotency_key(request))  # fmt: skip
    return await _written(request, result, 200 if result.duplicate else 201)


async def list_schedules(request: Request) -> Response:
    query = read_query(request, ListQuery)
    ctx = context(request)
    found = await Schedules(ctx.client, ctx.keys).listed(query.project, MAX_PAGE_ITEMS * 4)
    items = [schedule_view(s) for s in found if query.status in (None, s.status)]
    return json_response({"items": items[: query.limit]})


async def get_schedule(request: Request) -> Response:
    schedule_id = path_id(request, "schedule")
    ctx = context(request)
    found = (await Schedules(ctx.client, ctx.keys).get([schedule_id])).get(schedule_id)
    if found is None:
        raise NotFound(f"schedule {schedule_id} does not exist", schedule_id=schedule_id)
    return json_response(schedule_view(found))


async def post_schedule_pause(request: Request) -> Response:
    """Stop firing (resume starts again from then; missed fires are not made up)."""
    result = await pause_schedule(context(request).store, path_id(request, "schedule"),
                                  actor=actor(request))  # fmt: skip
    return await _written(request, result)


async def post_schedule_resume(request: Request) -> Response:
    result = await resume_schedule(context(request).store, path_id(request, "schedule"),
                                   actor=actor(request))  # fmt: skip
    return await _written(request, result)


async def delete_schedule_route(request: Request) -> Response:
    """Delete a schedule: it fires no more (its fires and jobs stay in the log)."""
    result = await delete_schedule(context(request).store, path_id(request, "schedule"),
                                   actor=actor(request))  # fmt: skip
    return await _written(request, result)


@idempotent
async def post_schedule_run(request: Request) -> Response:
    """Run now: one fire off the cron (once per Idempotency-Key)."""
    ctx = context(request)
    result, job_id = await run_schedule_now(
        ctx.store, path_id(request, "schedule"), ctx.settings.contract(), actor=actor(request),
        idempotency_key=idempotency_key(request),
    )  # fmt: skip
    fresh = bool(result.position) and not result.duplicate
    return json_response({"schedule_id": result.id, "job_id": job_id, "duplicate": not fresh},
                         201 if fresh else 200, position_headers(result))  # fmt: skip


SCHEDULE_SCHEMA = {
    "type": "object",
    "required": ["id", "version", "project", "name", "cron", "timezone", "status", "enabled",
                 "fires", "fire_count"],
    "properties": {"id": STRING, "version": INTEGER, "project": STRING, "name": STRING,
                   "cron": STRING, "timezone": STRING,
                   "status": {"type": "string", "enum": ["active", "paused", "deleted"]},
                   "enabled": BOOLEAN, "job": NULLABLE_OBJECT, "template": NULLABLE_STRING,
                   "template_version": {"type": ["integer", "null"]}, "inputs": OBJECT,
                   "next_fire_at": NULLABLE_STRING, "last_fire_time": NULLABLE_STRING,
                   "fire_count": INTEGER, "fires": {"type": "array", "items": OBJECT}},
}  # fmt: skip
WRITTEN = {"200": SCHEDULE_SCHEMA, "202": ref("CommandResult")}
RUN = {"type": "object", "required": ["schedule_id", "job_id", "duplicate"],
       "properties": {"schedule_id": STRING, "job_id": STRING, "duplicate": BOOLEAN}}  # fmt: skip
BODIES: dict[str, type[BaseModel]] = {"post_schedule": ScheduleInput}
QUERIES: dict[str, type[BaseModel]] = {"list_schedules": ListQuery}
RESPONSES: dict[str, dict[str, Any]] = {
    "post_schedule": {"201": SCHEDULE_SCHEMA, **WRITTEN},
    "list_schedules": {"200": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": SCHEDULE_SCHEMA}}}},
    "get_schedule": {"200": SCHEDULE_SCHEMA},
    "post_schedule_pause": WRITTEN, "post_schedule_resume": WRITTEN,
    "delete_schedule": WRITTEN,
    "post_schedule_run": {"200": RUN, "201": RUN},
}  # fmt: skip
ONE = "/api/schedules/{schedule_id}"
ROUTES = [
    Route("/api/schedules", post_schedule, methods=["POST"]),
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route(ONE, get_schedule, methods=["GET"]),
    Route(ONE, delete_schedule_route, methods=["DELETE"], name="delete_schedule"),
    Route(ONE + "/pause", post_schedule_pause, methods=["POST"]),
    Route(ONE + "/resume", post_schedule_resume, methods=["POST"]),
    Route(ONE + "/run", post_schedule_run, methods=["POST"]),
]
# The weakest role that may call each route (api/roles.py), by route name: a schedule submits
# work, as an operator does.
ROLES: dict[str, str] = {
    "post_schedule": "operator",
    "list_schedules": "viewer",
    "get_schedule": "viewer",
    "delete_schedule": "operator",
    "post_schedule_pause": "operator",
    "post_schedule_resume": "operator",
    "post_schedule_run": "operator",
}
