"""Task routes: POSTs issue commands, GETs read the board read model."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
)
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import (
    ID_PATTERN,
    TaskRef,
    actor,
    context,
    event_view,
    idempotency_key,
    idempotent,
    json_response,
    min_position,
    path_id,
    position_headers,
    read_body,
    read_query,
    written,
)
from cairn.api.roles import AUDITOR, OPERATOR, VIEWER
from cairn.api.schemas import ref
from cairn.commands.jobs.task_runs import cancel_task, request_task_run, retry_task
from cairn.commands.runner import CommandResult
from cairn.commands.tasks.task import (
    add_dependency,
    create_task,
    remove_dependency,
    transition_task,
    update_task,
)
from cairn.domain.errors import NotFound
from cairn.domain.jobs.usage import sum_usage
from cairn.domain.limits import MAX_PAGE_BYTES, MAX_PAGE_ITEMS, MAX_REASON
from cairn.domain.priority import parse_priority
from cairn.domain.tasks.spec import KEEPS_A_VALUE, PRIORITY_SCHEMA, Name, TaskPatch, TaskSpec
from cairn.domain.tasks.states import Status, describe
from cairn.domain.tasks.task import Task
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import card, task_view


def _query_priority(value: object) -> int:
    # A query carries a number as text.
    text = str(value)
    return parse_priority(int(text) if re.fullmatch(r"-?[0-9]{1,7}", text) else text)


QueryPriority = Annotated[
    int, BeforeValidator(_query_priority), WithJsonSchema(PRIORITY_SCHEMA)
]
STATUS = "|".join(s.value for s in Status)
Version = Annotated[int, Field(ge=0, le=2**53)]


class CreateBody(TaskSpec):
    blocked_by: list[TaskRef] = Field(default_factory=list, max_length=200)
    parent_id: TaskRef | None = None
    force: StrictBool = False


class TransitionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Status
    reason: str = Field(default="", max_length=MAX_REASON)
    force: StrictBool = False
    expected_version: Version | None = None


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


_REF_SCHEMA = {"type": "string", "maxLength": 64, "pattern": ID_PATTERN.format(kind="task")}
Blockers = Annotated[
    list[TaskRef],
    BeforeValidator(_as_list),
    Field(max_length=200),
    WithJsonSchema(
        {"anyOf": [_REF_SCHEMA, {"type": "array", "maxItems": 200, "items": _REF_SCHEMA}]}
    ),
]


class DependencyBody(BaseModel):
    """One blocker id, or a list of them."""

    model_config = ConfigDict(extra="forbid")
    blocked_by: Blockers


class PatchBody(TaskPatch):
    expected_version: Version | None = None

    @field_validator(*KEEPS_A_VALUE, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore")
    min_position: str | None = Field(
        default=None, description="wait (bounded) until the board shows this write"
    )


class BoardQuery(_Query):
    project: Name = "default"


class ListQuery(_Query):
    project: Name | None = None
    status: str | None = Field(
        default=None, pattern=f"^(?:(?:{STATUS})(?:,(?:{STATUS}))*)?$",
        description="comma-separated statuses (default: all)",
    )  # fmt: skip
    priority: QueryPriority | None = None
    label: Name | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_ITEMS)
    cursor: str | None = Field(
        default=None, max_length=400, pattern="^[^~]+~[^~]+~[^~]+$",
        description="the next_cursor of the page before",
    )  # fmt: skip


async def _written(request: Request, result: CommandResult, status: int = 200) -> Response:
    """The task after a write, once the board shows it; else the command result (202)."""

    async def shown() -> dict[str, Any] | None:
        task = (await context(request).board.get_tasks([result.id])).get(result.id)
        return await _card(request, task) if task is not None else None

    return await written(request, result, BOARD, shown, status)


async def _card(request: Request, task: Task) -> dict[str, Any]:
    related = await context(request).board.get_tasks(task.blocked_by)
    return card(task, related)


async def _task_or_404(request: Request, task_id: str) -> Task:
    ctx = context(request)
    await ctx.caught_up(min_position(request, ctx.keys))
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
    read_query(request, _Query)
    task = await _task_or_404(request, path_id(request, "task"))
    view, runs = await asyncio.gather(_card(request, task),
                                      context(request).queue.get_jobs(task.run_ids))  # fmt: skip
    view["usage"] = sum_usage(job.usage for job in runs.values())  # every run's, every attempt's
    return json_response(view)


@idempotent
async def patch_task(request: Request) -> Response:
    body = await read_body(request, PatchBody)
    patch = TaskPatch.model_validate(
        body.model_dump(exclude={"expected_version"}, exclude_unset=True)
    )
    result = await update_task(
        context(request).store,
        path_id(request, "task"),
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
        path_id(request, "task"),
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
    blockers = body.blocked_by
    task_id = path_id(request, "task")
    result = CommandResult(task_id, 0, "")
    if not blockers and not await context(request).store.version(task_id):
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
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
        path_id(request, "task"),
        path_id(request, "task", "dep_id"),
        actor=actor(request),
        idempotency_key=idempotency_key(request),
    )
    return await _written(request, result)


async def get_task_events(request: Request) -> Response:
    task_id = path_id(request, "task")
    ctx = context(request)
    events = await ctx.store.read_aggregate(task_id)
    if not events:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    return json_response({"id": task_id, "events": [event_view(e) for e in events]})


async def get_board(request: Request) -> Response:
    query = read_query(request, BoardQuery)
    ctx = context(request)
    await ctx.caught_up(min_position(request, ctx.keys))
    tasks = await ctx.board.project_tasks(query.project)
    by_id = {t.id: t for t in tasks}
    columns = [
        {"status": s.value, "cards": [card(t, by_id) for t in tasks if t.status == s]}
        for s in Status
    ]
    return json_response({"project": query.project, "columns": columns, "total": len(tasks)})


async def list_tasks(request: Request) -> Response:
    """Cards across columns in (status order, priority desc, created_at asc); cursor paging.
    A page ends at `limit` items or before it passes MAX_PAGE_BYTES (one item at least)."""
    query = read_query(request, ListQuery)
    ctx = context(request)
    await ctx.caught_up(min_position(request, ctx.keys))
    statuses = [s for s in (query.status or "").split(",") if s] or [s.value for s in Status]
    projects = (
        [query.project] if query.project else [p["project"] for p in await ctx.board.projects()]
    )
    items: list[dict[str, Any]] = []
    size = 0
    next_cursor = None
    order = [(p, s) for p in projects for s in statuses]
    start = 0
    after: str | None = None
    if query.cursor:
        c_project, c_status, after = query.cursor.split("~")
        start = order.index((c_project, c_status)) if (c_project, c_status) in order else len(order)
    last = ""
    for project, status in order[start:]:
        while next_cursor is None:
            page = await ctx.board.column_page(project, status, after, query.limit)
            if not page:
                break
            for member, task in page:
                if query.label is not None and query.label not in task.labels:
                    after = member
                    continue
                if query.priority is not None and task.priority != query.priority:
                    after = member
                    continue
                view = task_view(task)
                size += len(orjson.dumps(view))
                if items and size > MAX_PAGE_BYTES:  # ends before this one
                    next_cursor = last
                    break
                after = member
                items.append(view)
                last = f"{project}~{status}~{member}"
                if len(items) == query.limit:
                    next_cursor = last
                    break
        if next_cursor is not None:
            break
        after = None
    return json_response({"items": items, "next_cursor": next_cursor})


async def post_run(request: Request) -> Response:
    """Run now: queue a run of the task whatever its column (the move to ready is recorded
    with reason "run now", the actor, and `forced` if it bypassed the dependency guard); a
    task with an active run returns that run."""
    ctx = context(request)
    result, job_id = await request_task_run(
        ctx.store,
        path_id(request, "task"),
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
        ctx.store, path_id(request, "task"), ctx.settings.flags, actor=actor(request)
    )
    return await _written(request, result)


async def post_cancel(request: Request) -> Response:
    """Cancel the task and its active run together."""
    ctx = context(request)
    result = await cancel_task(
        ctx.store, path_id(request, "task"), ctx.settings.flags, actor=actor(request)
    )
    return await _written(request, result)


async def get_state_machine(request: Request) -> Response:
    return json_response(describe(context(request).settings.flags))


CARD = {"200": ref("TaskCard"), "202": ref("CommandResult")}
BODIES: dict[str, type[BaseModel]] = {
    "post_task": CreateBody,
    "patch_task": PatchBody,
    "post_transition": TransitionBody,
    "post_dependencies": DependencyBody,
}
QUERIES: dict[str, type[BaseModel]] = {
    "list_tasks": ListQuery, "get_board": BoardQuery, "get_task": _Query,
}  # fmt: skip
RESPONSES: dict[str, dict[str, Any]] = {
    "post_task": {"201": ref("TaskCard"), "202": ref("CommandResult")},
    "list_tasks": {"200": ref("TaskPage")},
    "get_board": {"200": ref("Board")},
    "get_task": {"200": ref("TaskCard")},
    "patch_task": CARD, "post_transition": CARD, "post_dependencies": CARD,
    "delete_dependency": CARD, "post_retry": CARD, "post_task_cancel": CARD,
    "get_task_events": {"200": ref("Events")},
    "post_run": {"200": ref("TaskRun"), "201": ref("TaskRun")},
    "get_state_machine": {"200": ref("StateMachine")},
}  # fmt: skip


class _TaskIdConvertor(StringConvertor):
    """A task id segment: anything but a sibling's literal name, so that `PATCH
    /api/v2/tasks/board` is 405 (the board is read-only), not a task lookup; path_id
    checks the id itself."""

    regex = "(?!board(?:/|$))[^/]+"


register_url_convertor("task_id", _TaskIdConvertor())
TASK = "/api/v2/tasks/{task_id:task_id}"
ROUTES = [
    Route("/api/v2/tasks", post_task, methods=["POST"]),
    Route("/api/v2/tasks", list_tasks, methods=["GET"]),
    Route("/api/v2/tasks/board", get_board, methods=["GET"]),
    Route(TASK, get_task, methods=["GET"]),
    Route(TASK, patch_task, methods=["PATCH"]),
    Route(TASK + "/transition", post_transition, methods=["POST"]),
    Route(TASK + "/dependencies", post_dependencies, methods=["POST"]),
    Route(TASK + "/dependencies/{dep_id}", delete_dependency, methods=["DELETE"]),
    Route(TASK + "/events", get_task_events, methods=["GET"]),
    Route(TASK + "/run", post_run, methods=["POST"]),
    Route(TASK + "/retry", post_retry, methods=["POST"]),
    Route(TASK + "/cancel", post_cancel, methods=["POST"], name="post_task_cancel"),
    Route("/api/v2/state-machine", get_state_machine, methods=["GET"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "post_task": OPERATOR,
    "list_tasks": VIEWER,
    "get_board": VIEWER,
    "get_task": VIEWER,
    "patch_task": OPERATOR,
    "post_transition": OPERATOR,
    "post_dependencies": OPERATOR,
    "delete_dependency": OPERATOR,
    "get_task_events": AUDITOR,
    "post_run": OPERATOR,
    "post_retry": OPERATOR,
    "post_task_cancel": OPERATOR,
    "get_state_machine": VIEWER,
}
