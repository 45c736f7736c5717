"""An orchestrator run's page (`/orchestrator/{id}`): what was asked of which service and where
the run is; the plan and the diff an approval is for; its jobs' steps (each job's own page has
the agent's conversation and the live output); the outcome with the rollback; its timeline.
And what an operator does to it: approve (with four eyes, someone other than its submitter),
reject with a reason, cancel, through the same commands as the API's routes. A refusal is
shown on the run's page, at the form it came from."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context, path_id
from cairn.api.dashboard.orchestrator_pages import first_line
from cairn.api.dashboard.render import (
    FieldErrors,
    Form,
    action,
    done,
    page,
    render,
    wait_for_writes,
)
from cairn.api.dashboard.run_page import PATCH_CAP, diff_lines
from cairn.api.dashboard.session import current_session
from cairn.api.jobs.run_views import step_view
from cairn.api.orchestrator.routes import RUNS, ReasonBody, read_artifact
from cairn.api.roles import OPERATOR, allows
from cairn.commands.jobs.service_runs import cancel_run
from cairn.commands.orchestrator.runs import approve_run, reject_run
from cairn.domain.errors import CairnError, NotFound
from cairn.domain.jobs.job import Job
from cairn.domain.orchestrator.runs import REASON_MAX, Run
from cairn.domain.tasks.spec import parse_model
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.projections.orchestrator.catalog import Runs

PLAN_CAP = 100_000  # bytes of the plan shown in the page; the whole file is a download


async def run_or_404(request: Request) -> Run:
    run_id = path_id(request, "orun", "run_id")
    ctx = context(request)
    found = await Runs(ctx.client, ctx.keys).get(run_id)
    if found is None:
        raise NotFound(f"no orchestrator run {run_id}", run_id=run_id)
    return found


def artifact_text(request: Request, ref: str | None, cap: int) -> dict[str, Any] | None:
    """An artifact the run names (its plan, its patch): its text up to `cap` and its link."""
    if not ref:
        return None
    href = "/queue/" + ref.removeprefix("/api/queue/jobs/")  # the job page's artifact route
    try:
        text, cut = read_artifact(request, ref, cap)
    except (CairnError, OSError):
        return {"href": href, "text": None, "cut": False}
    return {"href": href, "text": text, "cut": cut}


def phase(job_id: str | None, jobs: dict[str, Job]) -> dict[str, Any]:
    """One of the run's jobs (the plan, the apply) and its steps, once it exists."""
    job = jobs.get(job_id) if job_id else None
    steps = [step_view(s) for s in job.steps] if job else []
    return {"id": job_id, "job": job, "steps": steps}


async def run_view(request: Request, run: Run) -> dict[str, Any]:
    ctx = context(request)
    jobs = await ctx.queue.get_jobs(run.jobs)
    session = await current_session(request)
    operator = session is not None and allows(session.role, OPERATOR)
    awaiting = run.state == "awaiting_approval"
    # With four eyes the submitter may not approve: the page says so instead of a button.
    own = ctx.settings.four_eyes and session is not None and session.name == run.submitted_by
    diff = artifact_text(request, run.patch, PATCH_CAP)
    return {
        "run": run, "title": first_line(run.instruction),
        "plan_phase": phase(run.plan_job, jobs), "apply_phase": phase(run.apply_job, jobs),
        "plan": artifact_text(request, run.plan, PLAN_CAP), "diff": diff,
        "diff_lines": diff_lines(diff["text"]) if diff and diff["text"] else [],
        "allowed": run.spec.get("allowedPaths", []), "four_eyes": ctx.settings.four_eyes,
        "can_decide": operator and awaiting, "can_approve": operator and awaiting and not own,
        "own_under_four_eyes": operator and awaiting and own,
        "can_cancel": operator and not run.final and run.cancel_requested_by is None,
        "reason_max": REASON_MAX,
    }  # fmt: skip


async def _show(request: Request, extra: dict[str, Any], status: int = 200) -> Response:
    run = await run_or_404(request)
    view = await run_view(request, run)
    return await render(request, "orchestrator_run.html", {**view, **extra}, status)


@page  # as GET /api/orchestrator/runs/{id} (and its diff)
async def run_page(request: Request) -> Response:
    await asyncio.gather(wait_for_writes(request, RUNS), wait_for_writes(request, QUEUE))
    return await _show(request, {"errors": FieldErrors(), "form": "", "reason": ""})


async def _refused(request: Request, form: Form, error: CairnError) -> Response:
    if isinstance(error, NotFound):  # no such run: there is no page to show the refusal on
        return await render(request, "error.html", {"status": 404, "message": error.message}, 404)
    errors = FieldErrors(error, lambda path: path.split(".")[-1])
    shown = {"errors": errors, "form": form.get("form") or "decision",
             "reason": form.get("reason")}  # fmt: skip
    return await _show(request, shown, error.status if error.status < 500 else 422)


def _here(run_id: str, position: str) -> str:
    return f"/orchestrator/{run_id}" + (f"?min_position={position}" if position else "")


@action(on_error=_refused)
async def approve(request: Request, form: Form) -> Response:
    """As POST /api/orchestrator/runs/{id}/approve: the apply job is queued."""
    run_id = path_id(request, "orun", "run_id")
    ctx = context(request)
    result = await approve_run(ctx.store, run_id, actor=actor(request),
                               four_eyes=ctx.settings.four_eyes)  # fmt: skip
    return done(request, _here(run_id, result.position), "approved")


@action(on_error=_refused)
async def reject(request: Request, form: Form) -> Response:
    """As POST /api/orchestrator/runs/{id}/reject: the run fails with the reason given."""
    run_id = path_id(request, "orun", "run_id")
    body = parse_model(ReasonBody, {"reason": form.get("reason")})
    result = await reject_run(context(request).store, run_id, body.reason, actor=actor(request))
    return done(request, _here(run_id, result.position), "rejected")


@action(on_error=_refused)
async def cancel(request: Request, form: Form) -> Response:
    """As POST /api/orchestrator/runs/{id}/cancel: at once with no job going, else through
    its job (which rolls back first during a restart or verify)."""
    run = await run_or_404(request)
    result = await cancel_run(context(request).store, run.id, actor=actor(request))
    at_once = run.state == "awaiting_approval" or run.plan_job is None
    return done(request, _here(run.id, result.position),
                "cancelled" if at_once else "run_cancel_requested")  # fmt: skip
