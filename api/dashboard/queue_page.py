"""The queue (`/queue`): jobs newest first, filtered by the facets the queue read model indexes
(the same query as GET /api/queue/jobs) and by stage status, all kept in the URL; cursor
pages; counts per status; which capabilities no live worker offers."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import context
from cairn.api.dashboard.render import FieldErrors, page, render, wait_for_writes
from cairn.api.jobs.queue import ListQuery, live_capabilities
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.dispatch import missing_capabilities
from cairn.domain.jobs.job import Job, JobSource, JobStatus
from cairn.domain.jobs.kinds import PUBLISH_MODES, RUNTIMES
from cairn.domain.jobs.registry import JOB_TYPES
from cairn.domain.tasks.spec import parse_model
from cairn.projections.jobs.queue import NAME as QUEUE

PAGE_SIZES = (25, 50, 100)
STAGES = ("prepare", "execute", "publish")
STAGE_STATES = ("running", "succeeded", "failed", "skipped")
STAGE_SCAN = 2_000  # jobs looked at for one page filtered by stage (not an indexed facet)
FILTER_NAMES = ("status", "type", "runtime", "skill", "publishMode", "source", "repository",
                "project")  # fmt: skip


def stage_status(job: Job) -> str:
    """`<stage>:<status>` of the job's latest stage ("" before any)."""
    if not job.stages:
        return ""
    last = job.stages[-1]
    return f"{last.get('stage')}:{last.get('status')}"


def filter_options() -> dict[str, list[str]]:
    return {
        "status": [s.value for s in JobStatus],
        "type": sorted(JOB_TYPES),
        "runtime": list(RUNTIMES),
        "publishMode": list(PUBLISH_MODES),
        "source": [s.value for s in JobSource],
        "stage": [f"{s}:{t}" for s in STAGES for t in STAGE_STATES],
    }


async def queue_view(request: Request) -> dict[str, Any]:
    """The page's data, or the filters' refusal at their fields."""
    ctx = context(request)
    params = request.query_params
    chosen = {name: params.get(name, "").strip() for name in FILTER_NAMES}
    stage = params.get("stage", "")
    size = int(params.get("limit", "50")) if params.get("limit", "") in {"25", "50", "100"} else 50
    cursor = params.get("cursor") or None
    data = {k: v for k, v in chosen.items() if v}
    if cursor:
        data["cursor"] = cursor
    view: dict[str, Any] = {
        "chosen": chosen, "stage": stage, "limit": size, "options": filter_options(),
        "page_sizes": PAGE_SIZES, "cursor": cursor, "errors": FieldErrors(),
    }  # fmt: skip
    try:
        query = parse_model(ListQuery, {**data, "limit": size}, root="query")
        if stage and stage not in view["options"]["stage"]:
            reason = "one of " + ", ".join(view["options"]["stage"])
            errors = [{"path": "query.stage", "reason": reason}]
            raise ValidationFailed("stage is not valid", errors)
    except ValidationFailed as e:
        view["errors"] = FieldErrors(e, lambda path: path.removeprefix("query."))
        return {**view, "jobs": [], "next_cursor": None, "counts": {}, "scanned": 0}
    filters = query.filters()
    (jobs, next_cursor, scanned), workers, counts, projects = await asyncio.gather(
        _jobs(request, filters, cursor, size, stage), live_capabilities(request),
        ctx.queue.counts(filters.get("project")), ctx.board.projects(),
    )  # fmt: skip
    rows = [_row(j, workers) for j in jobs]
    base = {k: v for k, v in {**chosen, "stage": stage}.items() if v}
    if size != 50:
        base["limit"] = str(size)
    return {
        **view, "jobs": rows, "next_cursor": next_cursor, "counts": counts, "scanned": scanned,
        "base_query": urlencode(base), "total": sum(counts.values()),
        "projects": [p["project"] for p in projects],
    }  # fmt: skip


async def _jobs(
    request: Request, filters: dict[str, str], cursor: str | None, size: int, stage: str
) -> tuple[list[Job], str | None, int]:
    """A page of jobs; with a stage filter, pages of the indexed query are read and filtered
    until the page is full or STAGE_SCAN jobs were looked at (the cursor goes on from there)."""
    queue = context(request).queue
    if not stage:
        jobs, next_cursor = await queue.list_jobs(filters, cursor, size)
        return jobs, next_cursor, len(jobs)
    found: list[Job] = []
    scanned = 0
    while len(found) < size and scanned < STAGE_SCAN:
        batch, cursor = await queue.list_jobs(filters, cursor, min(500, STAGE_SCAN - scanned))
        scanned += len(batch)
        for job in batch:
            if stage_status(job) == stage:
                found.append(job)
                if len(found) == size:
                    return found, f"{job.created_at}|{job.id}", scanned
        if cursor is None:
            break
    return found, cursor, scanned


def _row(job: Job, workers: list[list[str]]) -> dict[str, Any]:
    task = job.normalized.get("task") or {}
    missing = (
        missing_capabilities(job.required_capabilities, workers)
        if job.status == JobStatus.QUEUED else None
    )  # fmt: skip
    return {
        "id": job.id,
        "type": job.submitted_type,
        "status": job.status,
        "runtime": job.normalized.get("targetRuntime") or "",
        "skill": (task.get("skill") or {}).get("id") or "",
        "repository": job.normalized.get("repository") or "",
        "project": job.project,
        "source": job.source,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "stage": stage_status(job),
        "created_at": job.created_at,
        "missing": missing,
        "paused": getattr(job, "paused", False),
        "title": _title(job),
    }


def _title(job: Job) -> str:
    """A line that says what the job does."""
    task = job.normalized.get("task") or {}
    text = job.prompt or task.get("title") or task.get("instructions") or ""
    return str(text).strip().splitlines()[0][:120] if str(text).strip() else job.submitted_type


@page
async def queue_page(request: Request) -> Response:
    await wait_for_writes(request, QUEUE)
    view = await queue_view(request)
    status = 422 if view["errors"] else 200
    return await render(request, "queue.html", view, status)
