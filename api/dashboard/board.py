"""The board (`/tasks`): a column per state of one project, and the moves, runs, retries and
cancels its cards offer. Reads the board and queue read models; writes through the same
commands as the task routes of the API."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context, path_id
from cairn.api.dashboard.render import (
    FieldErrors,
    Form,
    action,
    done,
    page,
    render,
    safe_next,
    wait_for_writes,
)
from cairn.commands.task_runs import cancel_task, request_task_run, retry_task
from cairn.commands.tasks import transition_task
from cairn.domain.errors import CairnError, NotFound
from cairn.domain.job import Job
from cairn.domain.priority import PRIORITY_NAMES
from cairn.domain.task import Task
from cairn.domain.task_spec import NAME_PATTERN
from cairn.domain.task_states import CLAIM_GUARDED, Flags, Status, allowed_targets
from cairn.projections.board import NAME as BOARD
from cairn.projections.board import card

COLUMN_CAP = 50  # cards shown per column before "Show all"
STATUS_NAMES = {
    "backlog": "Backlog", "ready": "Ready", "in_progress": "In progress",
    "in_review": "In review", "done": "Done", "blocked": "Blocked", "cancelled": "Cancelled",
}  # fmt: skip
PRIORITY_LABELS = {value: name for name, value in PRIORITY_NAMES.items()}
_PROJECT = re.compile(NAME_PATTERN)  # as the API's project names


def project_of(request: Request) -> str:
    project = request.query_params.get("project") or "default"
    if len(project) > 100 or not _PROJECT.fullmatch(project):
        raise NotFound("project names are letters, digits, '_', '.' and '-' (at most 100)")
    return project


def move_targets(status: str, flags: Flags) -> list[str]:
    """Where the "Move to" menu offers to go: the table's targets but those only a claim
    enters (Run now does that)."""
    return [t.value for t in allowed_targets(Status(status), flags) if t not in CLAIM_GUARDED]


def priority_label(value: int) -> str:
    return PRIORITY_LABELS.get(value, str(value))


async def board_view(request: Request, project: str, show_all: str = "") -> dict[str, Any]:
    """The board page's data: the same read as GET /api/v2/tasks/board, and the last run of
    each card shown from the queue read model. A column shows its first COLUMN_CAP cards
    (priority, then age) unless it is the one asked for whole."""
    ctx = context(request)
    tasks, projects = await asyncio.gather(ctx.board.project_tasks(project), ctx.board.projects())
    by_id = {t.id: t for t in tasks}
    by_status: dict[str, list[Task]] = {s.value: [] for s in Status}
    for task in tasks:
        by_status[task.status].append(task)
    shown = {
        status: cards if show_all == status else cards[:COLUMN_CAP]
        for status, cards in by_status.items()
    }
    runs = await ctx.queue.get_jobs([t.run_ids[-1] for c in shown.values() for t in c if t.run_ids])
    flags = ctx.settings.flags
    columns = [
        {"status": status, "name": STATUS_NAMES[status], "total": len(by_status[status]),
         "cards": [card_view(t, by_id, runs, flags) for t in cards]}
        for status, cards in shown.items()
    ]  # fmt: skip
    names = [p["project"] for p in projects]
    if project not in names:
        names = sorted([*names, project])
    return {"project": project, "projects": names, "columns": columns, "total": len(tasks)}


def card_view(
    task: Task, by_id: dict[str, Task], runs: dict[str, Job], flags: Flags
) -> dict[str, Any]:
    view = card(task, by_id)
    last = runs.get(task.run_ids[-1]) if task.run_ids else None
    view["last_run"] = _run_summary(last) if last else None
    view["targets"] = move_targets(task.status, flags)
    view["priority_label"] = priority_label(task.priority)
    return view


def _run_summary(job: Job) -> dict[str, Any]:
    outcome = job.outcome or {}
    error = outcome.get("error") or {}
    return {
        "id": job.id,
        "status": job.status,
        "attempt": job.attempt,
        "message": error.get("message") or outcome.get("summary") or "",
    }


@page
async def board_page(request: Request) -> Response:
    await wait_for_writes(request, BOARD)
    project = project_of(request)
    view = await board_view(request, project, request.query_params.get("all", ""))
    return await render(request, "board.html", {**view, "move_errors": {}})


async def _board_with_error(request: Request, form: Form, error: CairnError) -> Response:
    """A refused move or run, shown at its card (the board of the task's project), or on the
    task's page when it came from there."""
    task_id = str(request.path_params["task_id"])
    came_from = safe_next(form.get("next"))
    if came_from.startswith("/tasks/task-"):
        from cairn.api.dashboard.task_pages import task_page_with_error

        return await task_page_with_error(request, task_id, error, form)
    task = (await context(request).board.get_tasks([task_id])).get(task_id)
    project = task.project if task else "default"
    view = await board_view(request, project)
    errors = {task_id: FieldErrors(error)}
    return await render(request, "board.html", {**view, "move_errors": errors}, error.status)


@action(on_error=_board_with_error)
async def move_task(request: Request, form: Form) -> Response:
    ctx = context(request)
    task_id = path_id(request, "task")
    result = await transition_task(
        ctx.store, task_id, form.get("to"), ctx.settings.flags, actor=actor(request),
        reason=form.get("reason").strip()[:2000], force=form.checked("force"),
    )  # fmt: skip
    return done(request, _back(form, result.position), "moved")


@action(on_error=_board_with_error)
async def run_task(request: Request, form: Form) -> Response:
    """Run now, as POST /api/v2/tasks/{id}/run: queue a run whatever the column."""
    ctx = context(request)
    result, job_id = await request_task_run(
        ctx.store, path_id(request, "task"), ctx.settings.contract(), ctx.settings.flags,
        actor=actor(request), force=True,
    )  # fmt: skip
    if form.get("next") == "run":
        return done(request, f"/queue/{job_id}?min_position={result.position}", "queued")
    return done(request, _back(form, result.position), "queued")


@action(on_error=_board_with_error)
async def retry(request: Request, form: Form) -> Response:
    ctx = context(request)
    result = await retry_task(
        ctx.store, path_id(request, "task"), ctx.settings.flags, actor=actor(request)
    )
    return done(request, _back(form, result.position), "retried")


@action(on_error=_board_with_error)
async def cancel(request: Request, form: Form) -> Response:
    ctx = context(request)
    result = await cancel_task(
        ctx.store, path_id(request, "task"), ctx.settings.flags, actor=actor(request)
    )
    return done(request, _back(form, result.position), "cancelled")


def _back(form: Form, position: str) -> str:
    """The page the form came from, told to wait for the write."""
    target = safe_next(form.get("next"))
    path, _, fragment = target.partition("#")
    if position:
        path += ("&" if "?" in path else "?") + f"min_position={position}"
    return path + (f"#{fragment}" if fragment else "")
