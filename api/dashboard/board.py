"""The board (`/tasks`): a column per state of one project, its cards with their last run and
the moves they offer. Reads the board and queue read models; the cards' actions are in
task_actions.py."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import context
from cairn.api.dashboard.render import (
    page,
    render,
    wait_for_writes,
)
from cairn.domain.errors import NotFound
from cairn.domain.jobs.job import Job
from cairn.domain.priority import PRIORITY_NAMES
from cairn.domain.tasks.spec import NAME_PATTERN
from cairn.domain.tasks.states import CLAIM_GUARDED, Flags, Status, allowed_targets
from cairn.domain.tasks.task import Task
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import card

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
