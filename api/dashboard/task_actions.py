"""What a card or a task's page does to its task: move, run now, retry, cancel, send it back with
a message (changes requested: a follow-up of its last run), through the
same commands as the task routes of the API. A refusal is shown where the form came from: at
its card on the board, or on the task's page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context, path_id
from cairn.api.dashboard.board import board_view
from cairn.api.dashboard.render import FieldErrors, Form, action, done, render, safe_next
from cairn.api.dashboard.task_pages import task_page_with_error
from cairn.commands.jobs.task_runs import (
    cancel_task,
    request_changes,
    request_task_run,
    retry_task,
)
from cairn.commands.tasks.task import transition_task
from cairn.domain.errors import CairnError
from cairn.domain.jobs.followups import check_message


async def _board_with_error(request: Request, form: Form, error: CairnError) -> Response:
    """A refused move or run, shown at its card (the board of the task's project), or on the
    task's page when it came from there."""
    task_id = str(request.path_params["task_id"])
    came_from = safe_next(form.get("next"))
    if came_from.startswith("/tasks/task-"):
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


async def _changes_refused(request: Request, form: Form, error: CairnError) -> Response:
    if safe_next(form.get("next")).startswith("/tasks/task-"):
        task_id = path_id(request, "task")
        return await task_page_with_error(request, task_id, error, form, "changes")
    return await _board_with_error(request, form, error)


@action(on_error=_changes_refused)
async def changes(request: Request, form: Form) -> Response:
    """As POST /api/v2/tasks/{id}/changes: the task's last run followed up with the message;
    the run's page opens (its conversation goes on there)."""
    ctx = context(request)
    task_id = path_id(request, "task")
    message = check_message(form.get(f"message-{task_id}") or form.get("message"), "message")
    result, job_id = await request_changes(ctx.store, task_id, message, ctx.settings.flags,
                                           actor=actor(request))  # fmt: skip
    return done(request, f"/queue/{job_id}?min_position={result.position}", "changes_requested")


def _back(form: Form, position: str) -> str:
    """The page the form came from, told to wait for the write."""
    target = safe_next(form.get("next"))
    path, _, fragment = target.partition("#")
    if position:
        path += ("&" if "?" in path else "?") + f"min_position={position}"
    return path + (f"#{fragment}" if fragment else "")
