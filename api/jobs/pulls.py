"""A job's pull request as its facts leave it (domain/jobs/pulls.py): state, checks, the review
decision, what Cairn did about it, and its timeline."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import context, json_response, path_id
from cairn.api.jobs.queue import _job_or_404
from cairn.api.roles import VIEWER
from cairn.domain.errors import NotFound
from cairn.domain.jobs.pulls import PullRequest
from cairn.projections.jobs.pulls import Pulls


def pull_view(pr: PullRequest) -> dict[str, Any]:
    return {
        "id": pr.id, "url": pr.url, "number": pr.number, "state": pr.state, "branch": pr.branch,
        "base": pr.base, "mergeCommit": pr.merge_commit, "reviewDecision": pr.review_decision,
        "checks": [{"name": c.name, "status": c.status, "conclusion": c.conclusion,
                    "url": c.url, "failed": c.failed} for c in pr.checks],
        "failing": [c.name for c in pr.failing], "jobs": pr.jobs, "taskId": pr.task_id,
        "autoFixes": pr.auto_fixes, "maxAutoFixes": pr.policy.max_auto_fixes,
        "gaveUp": pr.gave_up, "waiting": pr.deferred, "updatedAt": pr.updated_at,
        "timeline": pr.timeline,
    }  # fmt: skip


async def pull_of_job(request: Request, job_id: str) -> PullRequest | None:
    """The PR the job opened or pushed to, if any (as the read model has it)."""
    job = await _job_or_404(request, job_id)
    url = (job.publish or {}).get("pr_url")
    if not url:
        return None
    ctx = context(request)
    return await Pulls(ctx.client, ctx.keys).get(job.project, str(url))


async def get_pull_request(request: Request) -> Response:
    """The pull request the job opened (or pushed to, a follow-up), folded from its facts."""
    job_id = path_id(request, "job")
    pr = await pull_of_job(request, job_id)
    if pr is None:
        raise NotFound(f"job {job_id} opened no pull request (or it is not yet recorded)",
                       job_id=job_id)  # fmt: skip
    return json_response(pull_view(pr))


RESPONSES: dict[str, dict[str, Any]] = {"get_pull_request": {"200": {"type": "object"}}}
ROUTES = [Route("/api/queue/jobs/{job_id}/pull-request", get_pull_request, methods=["GET"])]
ROLES: dict[str, str] = {"get_pull_request": VIEWER}
