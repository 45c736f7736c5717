"""The board (`/tasks`): a column per state of one project, its cards with their last run and
the moves they offer. Reads the board and queue read models; the cards' actions are in
task_actions.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import context
from cairn.api.dashboard.render import (
    page,
    render,
    wait_for_writes,
)
from cairn.api.jobs.queue import live_capabilities
from cairn.domain.errors import NotFound
from cairn.domain.jobs.dispatch import missing_capabilities
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.kinds import AGENT_RUNTIMES
from cairn.domain.jobs.pulls import PullRequest
from cairn.domain.priority import PRIORITY_NAMES
from cairn.domain.tasks.spec import NAME_PATTERN
from cairn.domain.tasks.states import CLAIM_GUARDED, Flags, Status, allowed_targets
from cairn.domain.tasks.task import Task
from cairn.projections.jobs.pulls import Pulls
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import card
from cairn.projections.tasks.projects import Projects

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
    # The last two runs of each card: the last one, and the one before (whose PR a follow-up
    # that is still running goes on with).
    runs = await ctx.queue.get_jobs([i for c in shown.values() for t in c for i in t.run_ids[-2:]])
    urls = [str(url) for j in runs.values() if (url := (j.publish or {}).get("pr_url"))]
    prs = await Pulls(ctx.client, ctx.keys).get_many(project, urls) if urls else {}
    waiting = request.query_params.get("pr")
    if waiting in PR_FILTERS:
        shown = {status: [t for t in cards if PR_FILTERS[waiting](_pr_of(t, runs, prs))]
                 for status, cards in shown.items()}  # fmt: skip
    flags = ctx.settings.flags
    queued = [j for j in runs.values() if j.status == "queued"]
    workers = await live_capabilities(request) if queued else []
    columns = [
        {"status": status, "name": STATUS_NAMES[status], "total": len(by_status[status]),
         "cards": [card_view(t, by_id, runs, flags, workers, prs) for t in cards]}
        for status, cards in shown.items()
    ]  # fmt: skip
    names = [p["project"] for p in projects]
    if project not in names:
        names = sorted([*names, project])
    return {"project": project, "projects": names, "columns": columns, "total": len(tasks),
            "pr_filter": waiting if waiting in PR_FILTERS else None}  # fmt: skip


# The board's PR filters: tasks whose open PR waits on a review, or has failing checks.
PR_FILTERS: dict[str, Callable[[PullRequest | None], bool]] = {
    "review": lambda pr: pr is not None and pr.state == "open" and not pr.failing
                         and pr.review_decision != "APPROVED",
    "failing": lambda pr: pr is not None and pr.state == "open" and bool(pr.failing),
}  # fmt: skip


def _pr_of(task: Task, runs: dict[str, Job], prs: dict[str, PullRequest]) -> PullRequest | None:
    """The PR of the task's last run, or of the one before (a follow-up of it still runs)."""
    for job_id in reversed(task.run_ids[-2:]):
        url = (runs[job_id].publish or {}).get("pr_url") if job_id in runs else None
        if url:
            return prs.get(str(url))
    return None


def pr_summary(pr: PullRequest) -> dict[str, Any]:
    """A PR as a card or a page shows it: number, state, a mark per check, the review."""
    return {
        "url": pr.url, "number": pr.number, "state": pr.state,
        "review": (pr.review_decision or "").lower().replace("_", " ") or None,
        "checks": [{"name": c.name, "said": c.conclusion or c.status.replace("_", " "),
                    "mark": "failed" if c.failed else "passed" if c.conclusion in (
                        "success", "neutral", "skipped") else "pending"} for c in pr.checks],
        "failing": [c.name for c in pr.failing], "gave_up": pr.gave_up,
        "waiting": str(pr.deferred["reason"]).replace("_", " ") if pr.deferred else None,
        "auto_fixes": pr.auto_fixes, "max_auto_fixes": pr.policy.max_auto_fixes,
    }  # fmt: skip


def card_view(
    task: Task, by_id: dict[str, Task], runs: dict[str, Job], flags: Flags,
    workers: list[list[str]] | None = None, prs: dict[str, PullRequest] | None = None,
) -> dict[str, Any]:  # fmt: skip
    view = card(task, by_id)
    last = runs.get(task.run_ids[-1]) if task.run_ids else None
    view["last_run"] = _run_summary(last) if last else None
    pr = _pr_of(task, runs, prs or {})
    view["pr"] = pr_summary(pr) if pr is not None else None
    view["cannot_start"] = (cannot_start(last, workers or [])
                            if last is not None and last.status == "queued" else None)  # fmt: skip
    view["targets"] = move_targets(task.status, flags)
    view["priority_label"] = priority_label(task.priority)
    return view


def cannot_start(job: Job, workers: list[list[str]]) -> str | None:
    """Why a queued run waits for good, and what to do: no live worker has what it needs."""
    missing = missing_capabilities(job.required_capabilities, workers)
    if not missing:
        return None
    agents = [m for m in missing if m in AGENT_RUNTIMES]
    if agents:
        name = agents[0]
        return (f"No worker has {name}: install it (`cairn agents install {name}`) and sign it "
                f"in on a worker, or start a worker that has it.")  # fmt: skip
    return (f"No worker has {', '.join(missing)}: start a worker with `cairn worker "
            f"--capabilities {','.join(job.required_capabilities)}`.")  # fmt: skip


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
    steps = await getting_started(request) if view["total"] == 0 else None
    return await render(request, "board.html", {**view, "move_errors": {}, "steps": steps})


async def getting_started(request: Request) -> list[dict[str, Any]]:
    """The first hour's three steps, each ticked once done: a project with a repository, a
    worker that offers an agent, a task that ran."""
    ctx = context(request)
    projects, workers, ran = await asyncio.gather(
        Projects(ctx.client, ctx.keys).all(), live_capabilities(request),
        ctx.queue.list_jobs({"source": "board"}, None, 1),
    )  # fmt: skip
    with_repository = [p.name for p in projects if p.settings.repository]
    agents = sorted({c for caps in workers for c in caps if c in AGENT_RUNTIMES})
    return [
        {"done": bool(with_repository), "title": "Create a project with a repository",
         "how": "Projects, or `cairn projects create NAME --repository PATH-OR-URL`",
         "link": "/projects",
         "found": f"done: {', '.join(with_repository[:3])}" if with_repository else ""},
        {"done": bool(agents), "title": "Give a worker an agent",
         "how": "`cairn agents install`, then sign one in (an API key, or the CLI's own "
                "login) and restart the worker; `cairn agents list` says what it finds",
         "link": "/workers", "found": f"offered: {', '.join(agents)}" if agents else ""},
        {"done": bool(ran[0]), "title": "Create a task and run it",
         "how": "New task, then Run now on its card (or `cairn tasks create`, `cairn tasks run`)",
         "link": "", "found": "a task ran" if ran[0] else ""},
    ]  # fmt: skip
