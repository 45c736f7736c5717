"""Task routes: POSTs issue commands, GETs read the board read model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import (
    actor,
    command_body,
    context,
    event_view,
    idempotency_key,
    idempotent,
    json_response,
    min_position,
    position_headers,
    read_body,
)
from cairn.commands.runner import CommandResult
from cairn.commands.runs import cancel_task, request_task_run, retry_task
from cairn.commands.tasks import (
    add_dependency,
    create_task,
    remove_dependency,
    transition_task,
    update_task,
)
from cairn.domain.errors import NotFound, ValidationFailed
from cairn.domain.priority import parse_priority
from cairn.domain.task import Task
from cairn.domain.task_spec import Ref, TaskPatch, TaskSpec
from cairn.domain.task_states import Status, describe
from cairn.projections.board import card, task_view

MAX_LIMIT = 500


class CreateBody(TaskSpec):
    force: bool = False


class TransitionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=40)
    reason: str = Field(default="", max_length=2000)
    force: bool = False
    expected_version: int | None = Field(default=None, ge=0)


class DependencyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    blocked_by: Ref | list[Ref]


class PatchBody(TaskPatch):
    expected_version: int | None = Field(default=None, ge=0)


async def _written(request: Request, result: CommandResult, status: int = 200) -> Response:
    """The task after a write, once the board shows it; else the command result (202)."""
    ctx = context(request)
    headers = position_headers(result)
    if await ctx.caught_up(result.position):
        tasks = await ctx.board.get_tasks([result.id])
        if result.id in tasks:
            return json_response(await _card(request, tasks[result.id]), status, headers)
    return json_response(command_body(result), 202, headers)


async def _card(request: Request, task: Task) -> dict[str, Any]:
    related = await context(request).board.get_tasks(task.blocked_by)
    return card(task, related)


async def _task_or_404(request: Request, task_id: str) -> Task:
    ctx = context(request)
    await ctx.caught_up(min_position(request))
    task = (await ctx.board.get_tasks([task_id])).get(task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    return task


@idempotent
async def post_task(request: Request) -> Response:
    body = await read_body(request, CreateBody)
    spec = TaskSpec.model_validate(body.model_dump(exclude={"force"}))
    result = await create_task(
        context(request).store,
        spec,
        actor=actor(request),
        idempotency_key=idempotency_key(request),
        force=body.force,
    )
    return await _written(request, result, 201)


async def get_task(request: Request) -> Response:
    task = await _task_or_404(request, request.path_params["task_id"])
    return json_response(await _card(request, task))


@idempotent
async def patch_task(request: Request) -> Response:
    body = await read_body(request, PatchBody)
    patch = TaskPatch.model_validate(
        body.model_dump(exclude={"expected_version"}, exclude_unset=True)
    )
    result = await update_task(
        context(request).store,
        request.path_params["task_id"],
        patch,
        actor=actor(request),
        expected_version=body.expected_version,
        idempotency_key=idempotency_key(request),
    )
    return await _written(request, result)


@idempotent
async def post_transition(request: Request) -> Response:
    body = await read_body(request, TransitionBody)
    ctx = context(request)
    result = await transition_task(
        ctx.store,
        request.path_params["task_id"],
        body.to,
        ctx.settings.flags,
        actor=actor(request),
        reason=body.reason,
        force=body.force,
        expected_version=body.expected_version,
        idempotency_key=idempotency_key(request),
    )
    return await _written(request, result)


@idempotent
async def post_dependencies(request: Request) -> Response:
    body = await read_body(request, DependencyBody)
    blockers = [body.blocked_by] if isinstance(body.blocked_by, str) else body.blocked_by
    task_id = request.path_params["task_id"]
    result = CommandResult(task_id, 0, "")
    for blocker in dict.fromkeys(blockers):
        result = await add_dependency(
            context(request).store,
            task_id,
            blocker,
            actor=actor(request),
            idempotency_key=idempotency_key(request),
        )
    return await _written(request, result)


@idempotent
async def delete_dependency(request: Request) -> Response:
    result = await remove_dependency(
        context(request).store,
        request.path_params["task_id"],
        request.path_params["dep_id"],
        actor=actor(request),
        idempotency_key=idempotency_key(request),
    )
    return await _written(request, result)


async def get_task_events(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    ctx = context(request)
    if not ctx.keys.is_aggregate_id(task_id):
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    events = await ctx.store.read_aggregate(task_id)
    if not events:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    return json_response({"id": task_id, "events": [event_view(e) for e in events]})


async def get_board(request: Request) -> Response:
    project = request.query_params.get("project", "default")
    ctx = context(request)
    await ctx.caught_up(min_position(request))
    tasks = await ctx.board.project_tasks(project)
    by_id = {t.id: t for t in tasks}
    columns = [
        {"status": s.value, "cards": [card(t, by_id) for t in tasks if t.status == s]}
        for s in Status
    ]
    return json_response({"project": project, "columns": columns, "total": len(tasks)})


async def list_tasks(request: Request) -> Response:
    """Cards across columns in (status order, priority desc, created_at asc); cursor paging."""
    q = request.query_params
    ctx = context(request)
    errors = []
    statuses = [s for s in q.get("status", "").split(",") if s] or [s.value for s in Status]
    bad = [s for s in statuses if s not in {x.value for x in Status}]
    if bad:
        errors.append({"path": "query.status", "reason": f"unknown status {bad[0]!r}"})
    priority = None
    if "priority" in q:
        try:
            priority = parse_priority(
                int(q["priority"]) if q["priority"].lstrip("-").isdigit() else q["priority"]
            )
        except ValueError as e:
            errors.append({"path": "query.priority", "reason": str(e)})
    try:
        limit = int(q.get("limit", "50"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError:
        errors.append({"path": "query.limit", "reason": f"an integer from 1 to {MAX_LIMIT}"})
        limit = 0
    cursor = q.get("cursor", "")
    if cursor and cursor.count("~") != 2:
        errors.append({"path": "query.cursor", "reason": "not a cursor this API gave"})
    if errors:
        raise ValidationFailed("the query is not valid", errors)
    projects = (
        [q["project"]] if "project" in q else [p["project"] for p in await ctx.board.projects()]
    )
    label = q.get("label")
    items: list[dict[str, Any]] = []
    next_cursor = None
    order = [(p, s) for p in projects for s in statuses]
    start = 0
    after: str | None = None
    if cursor:
        c_project, c_status, after = cursor.split("~")
        start = order.index((c_project, c_status)) if (c_project, c_status) in order else len(order)
    for project, status in order[start:]:
        while len(items) < limit:
            page = await ctx.board.column_page(project, status, after, limit)
            if not page:
                break
            for member, task in page:
                after = member
                if (label is None or label in task.labels) and (
                    priority is None or task.priority == priority
                ):
                    items.append(task_view(task))
                    if len(items) == limit:
                        next_cursor = f"{project}~{status}~{member}"
                        break
        after = None
        if len(items) >= limit:
            break
    return json_response({"items": items, "next_cursor": next_cursor})


async def post_run(request: Request) -> Response:
    """Run now: queue a run of the task whatever its column (the move to ready is recorded
    with reason "run now", the actor, and `forced` if it bypassed the dependency guard); a
    task with an active run returns that run."""
    ctx = context(request)
    result, job_id = await request_task_run(
        ctx.store,
        request.path_params["task_id"],
        ctx.settings.contract(),
        ctx.settings.flags,
        actor=actor(request),
        force=True,
    )
    await ctx.caught_up(result.position)
    headers = position_headers(result)
    return json_response(
        {"task_id": result.id, "job_id": job_id, "duplicate": result.duplicate},
        200 if result.duplicate else 201,
        headers,
    )


async def post_retry(request: Request) -> Response:
    """A blocked task (its run failed) back to ready; the scheduler runs it again."""
    ctx = context(request)
    result = await retry_task(
        ctx.store, request.path_params["task_id"], ctx.settings.flags, actor=actor(request)
    )
    return await _written(request, result)


async def post_cancel(request: Request) -> Response:
    """Cancel the task and its active run together."""
    ctx = context(request)
    result = await cancel_task(
        ctx.store, request.path_params["task_id"], ctx.settings.flags, actor=actor(request)
    )
    return await _written(request, result)


async def get_state_machine(request: Request) -> Response:
    return json_response(describe(context(request).settings.flags))


async def get_projects(request: Request) -> Response:
    return json_response({"projects": await context(request).board.projects()})


ROUTES = [
    Route("/api/v2/tasks", post_task, methods=["POST"]),
    Route("/api/v2/tasks", list_tasks, methods=["GET"]),
    Route("/api/v2/tasks/board", get_board, methods=["GET"]),
    Route("/api/v2/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/v2/tasks/{task_id}", patch_task, methods=["PATCH"]),
    Route("/api/v2/tasks/{task_id}/transition", post_transition, methods=["POST"]),
    Route("/api/v2/tasks/{task_id}/dependencies", post_dependencies, methods=["POST"]),
    Route("/api/v2/tasks/{task_id}/dependencies/{dep_id}", delete_dependency, methods=["DELETE"]),
    Route("/api/v2/tasks/{task_id}/events", get_task_events, methods=["GET"]),
    Route("/api/v2/tasks/{task_id}/run", post_run, methods=["POST"]),
    Route("/api/v2/tasks/{task_id}/retry", post_retry, methods=["POST"]),
    Route("/api/v2/tasks/{task_id}/cancel", post_cancel, methods=["POST"], name="post_task_cancel"),
    Route("/api/v2/state-machine", get_state_machine, methods=["GET"]),
    Route("/api/v2/projects", get_projects, methods=["GET"]),
]
