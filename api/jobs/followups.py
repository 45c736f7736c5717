"""Follow-ups: "now also do X" on top of a finished run (a new job on the same branch, resuming
the agent's session; domain/jobs/followups.py), and a board task sent back with a message (a
follow-up of its last run; the task back to ready, the message in its history)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import actor, context, idempotency_key, path_id, read_body
from cairn.api.jobs.queue import _Wire, written_job
from cairn.api.roles import OPERATOR
from cairn.api.schemas import ref
from cairn.commands.jobs.task_runs import follow_up, request_changes
from cairn.domain.jobs.followups import MESSAGE_MAX, check_message
from cairn.domain.tasks.spec import Visible


class FollowUpBody(_Wire):
    message: Annotated[str, Field(min_length=1, max_length=MESSAGE_MAX), *Visible]


async def post_follow_up(request: Request) -> Response:
    """A follow-up of a finished job (201: the new job); a retry with the same
    Idempotency-Key makes it once."""
    body: FollowUpBody = await read_body(request, FollowUpBody)
    ctx = context(request)
    result, new_id = await follow_up(
        ctx.store, path_id(request, "job"), check_message(body.message), ctx.settings.flags,
        actor=actor(request), idempotency_key=idempotency_key(request),
    )  # fmt: skip
    return await written_job(request, result, new_id, 201)


async def post_changes(request: Request) -> Response:
    """A task sent back with a message: its last run followed up (201: the new job)."""
    body: FollowUpBody = await read_body(request, FollowUpBody)
    ctx = context(request)
    result, new_id = await request_changes(
        ctx.store, path_id(request, "task"), check_message(body.message), ctx.settings.flags,
        actor=actor(request), idempotency_key=idempotency_key(request),
    )  # fmt: skip
    return await written_job(request, result, new_id, 201)


BODIES: dict[str, type[BaseModel]] = {"post_follow_up": FollowUpBody,
                                      "post_changes": FollowUpBody}  # fmt: skip
RESPONSES: dict[str, dict[str, Any]] = {
    "post_follow_up": {"201": ref("Job"), "202": ref("CommandResult")},
    "post_changes": {"201": ref("Job"), "202": ref("CommandResult")},
}
ROUTES = [
    Route("/api/queue/jobs/{job_id}/follow-ups", post_follow_up, methods=["POST"]),
    Route("/api/v2/tasks/{task_id}/changes", post_changes, methods=["POST"]),
]
ROLES: dict[str, str] = {"post_follow_up": OPERATOR, "post_changes": OPERATOR}
