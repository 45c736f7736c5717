"""Quick actions: one-off runs that stay off the board until promoted."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool
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
)
from cairn.api.jobs.queue import _job_or_404, _Wire, written_job
from cairn.api.roles import OPERATOR, VIEWER
from cairn.api.schemas import ref
from cairn.commands.jobs.job import JobRequest, promote_quick_run, submit_quick_run
from cairn.domain.errors import NotFound
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.kinds import PublishMode, Runtime
from cairn.domain.limits import MAX_DESCRIPTION
from cairn.domain.tasks.spec import Name, Visible
from cairn.projections.tasks.board import NAME as BOARD

Prompt = Annotated[str, Field(min_length=1, max_length=MAX_DESCRIPTION), *Visible]


class QuickRunBody(_Wire):
    prompt: Prompt
    repository: str | None = Field(default=None, min_length=1, max_length=500)
    runtime: Runtime | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    publish_mode: PublishMode | None = Field(
        default=None, description="none, branch or pr; unset: the install's default"
    )
    project: Name = "default"
    promote: StrictBool = False


def quick_run_view(job: Job) -> dict[str, Any]:
    outcome = job.outcome or {}
    return {
        "id": job.id,
        "prompt": job.prompt,
        "status": job.status,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "logs_ref": f"/api/queue/jobs/{job.id}/events",
        "result_summary": outcome.get("summary") or (outcome.get("error") or {}).get("message"),
        "promoted_task_id": job.promoted_task_id,
        "project": job.project,
    }


def quick_run_payload(body: QuickRunBody) -> dict[str, Any]:
    """The task payload of a quick run (the API's and the dashboard's, the same)."""
    payload: dict[str, Any] = {"task": {"instructions": body.prompt}}
    if body.repository:
        payload["repository"] = body.repository
    if body.runtime:
        payload["targetRuntime"] = body.runtime
    if body.model:
        payload["task"]["runtime"] = {"model": body.model}
    if body.publish_mode:
        payload["task"]["publish"] = {"mode": body.publish_mode}
    return payload


@idempotent
async def post_quick_run(request: Request) -> Response:
    """Start a quick run (source quick_action; never on the board unless promoted)."""
    body: QuickRunBody = await read_body(request, QuickRunBody)
    payload = quick_run_payload(body)
    ctx = context(request)
    result = await submit_quick_run(
        ctx.store,
        JobRequest("task", payload, project=body.project),
        body.prompt,
        ctx.settings.contract(),
        actor=actor(request),
        idempotency_key=idempotency_key(request),
    )
    if body.promote:
        result, _ = await promote_quick_run(ctx.store, result.id, actor=actor(request))
    return await written_job(request, result, result.id, 201, quick_run_view)


async def get_quick_run(request: Request) -> Response:
    job = await _job_or_404(request, path_id(request, "job", "run_id"))
    if job.source != "quick_action":
        raise NotFound(f"{job.id} is a queue job, not a quick run", job_id=job.id)
    return json_response(quick_run_view(job))


async def post_promote(request: Request) -> Response:
    """Make a board task from the quick run; a repeat returns the same task."""
    ctx = context(request)
    run_id = path_id(request, "job", "run_id")
    result, task_id = await promote_quick_run(ctx.store, run_id, actor=actor(request))
    await ctx.caught_up(result.position, BOARD)
    return json_response(
        {
            "id": run_id,
            "promoted_task_id": task_id,
            "duplicate": not result.position,
        },
        headers=position_headers(result),
    )


BODIES: dict[str, type[BaseModel]] = {"post_quick_run": QuickRunBody}
RESPONSES: dict[str, dict[str, Any]] = {
    "post_quick_run": {"201": ref("QuickRun"), "202": ref("CommandResult")},
    "get_quick_run": {"200": ref("QuickRun")},
    "post_promote": {"200": ref("Promotion")},
}
ROUTES = [
    Route("/api/v2/quick-runs", post_quick_run, methods=["POST"]),
    Route("/api/v2/quick-runs/{run_id}", get_quick_run, methods=["GET"]),
    Route("/api/v2/quick-runs/{run_id}/promote", post_promote, methods=["POST"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "post_quick_run": OPERATOR,
    "get_quick_run": VIEWER,
    "post_promote": OPERATOR,
}
