"""Proposal routes: submit, the triage list, promote (once), dismiss, reprioritize."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import (
    actor,
    context,
    json_response,
    path_id,
    position_headers,
    read_body,
    read_query,
    written,
)
from cairn.api.roles import OPERATOR, VIEWER
from cairn.api.schemas import INTEGER, NULLABLE_STRING, OBJECT, STRING, ref
from cairn.commands.planning.proposals import (
    dismiss_proposal,
    promote_proposal,
    set_proposal_priority,
    submit_proposal,
)
from cairn.commands.runner import CommandResult
from cairn.domain.errors import NotFound
from cairn.domain.limits import MAX_PAGE_ITEMS, MAX_REASON
from cairn.domain.planning.proposals import Proposal, ProposalInput, ReviewPriority
from cairn.domain.tasks.spec import Name
from cairn.projections.planning.proposals import NAME as PROPOSALS
from cairn.projections.planning.proposals import Proposals


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["task", "job"] = "task"


class DismissBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class PriorityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    review_priority: ReviewPriority


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["open", "promoted", "dismissed"] = "open"
    priority: ReviewPriority | None = None
    repository: str | None = Field(default=None, max_length=2_000)
    project: Name | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_ITEMS)


def proposal_view(p: Proposal) -> dict[str, Any]:
    return {
        "id": p.id, "version": p.version, "project": p.project, "title": p.title,
        "description": p.description, "status": p.status, "task": p.task,
        "origins": p.origins, "count": p.count, "dedup_key": p.dedup_key,
        "review_priority": p.review_priority, "repository": p.repository or None,
        "promoted_to": p.promoted_to, "dismiss_reason": p.dismiss_reason,
        "created_at": p.created_at, "updated_at": p.updated_at,
    }  # fmt: skip


async def _written(request: Request, result: CommandResult, status: int = 200) -> Response:
    async def shown() -> dict[str, Any] | None:
        ctx = context(request)
        found = (await Proposals(ctx.client, ctx.keys).get([result.id])).get(result.id)
        return proposal_view(found) if found is not None else None

    return await written(request, result, PROPOSALS, shown, status)


async def post_proposal(request: Request) -> Response:
    """Propose follow-up work; one with the dedup key of an open proposal is merged into it."""
    given = await read_body(request, ProposalInput)
    result = await submit_proposal(context(request).store, given, actor=actor(request))
    return await _written(request, result, 201 if result.version == 1 else 200)


async def list_proposals(request: Request) -> Response:
    query = read_query(request, ListQuery)
    ctx = context(request)
    found = await Proposals(ctx.client, ctx.keys).list(
        query.status, project=query.project, repository=query.repository,
        priority=query.priority.value if query.priority else None, limit=query.limit,
    )  # fmt: skip
    return json_response({"items": [proposal_view(p) for p in found]})


async def get_proposal(request: Request) -> Response:
    proposal_id = path_id(request, "proposal")
    found = await Proposals(context(request).client, context(request).keys).get([proposal_id])
    if proposal_id not in found:
        raise NotFound(f"proposal {proposal_id} does not exist", proposal_id=proposal_id)
    return json_response(proposal_view(found[proposal_id]))


async def post_proposal_promote(request: Request) -> Response:
    """Promote to a board task (or a queue job); promoting again returns the same one."""
    body = await read_body(request, PromoteBody)
    ctx = context(request)
    result, created = await promote_proposal(
        ctx.store,
        path_id(request, "proposal"),
        body.to,
        ctx.settings.contract(),
        actor=actor(request),
    )
    await ctx.caught_up(result.position, PROPOSALS)
    again = result.duplicate or not result.position
    return json_response({"id": result.id, "promoted_to": {"target": body.to, "id": created},
                          "duplicate": again}, 200 if again else 201,
                         position_headers(result))  # fmt: skip


async def post_proposal_dismiss(request: Request) -> Response:
    body = await read_body(request, DismissBody)
    ctx = context(request)
    result = await dismiss_proposal(ctx.store, path_id(request, "proposal"), body.reason,
                                    actor=actor(request))  # fmt: skip
    return await _written(request, result)


async def post_proposal_priority(request: Request) -> Response:
    body = await read_body(request, PriorityBody)
    ctx = context(request)
    result = await set_proposal_priority(ctx.store, path_id(request, "proposal"),
                                         body.review_priority, actor=actor(request))  # fmt: skip
    return await _written(request, result)


PROPOSAL_SCHEMA = {
    "type": "object",
    "required": ["id", "project", "title", "status", "count", "origins", "review_priority"],
    "properties": {"id": STRING, "version": INTEGER, "project": STRING, "title": STRING,
                   "status": {"type": "string", "enum": ["open", "promoted", "dismissed"]},
                   "count": INTEGER, "origins": {"type": "array", "items": OBJECT},
                   "review_priority": STRING, "dedup_key": NULLABLE_STRING,
                   "promoted_to": {"type": ["object", "null"]}},
}  # fmt: skip
WRITTEN = {"200": PROPOSAL_SCHEMA, "202": ref("CommandResult")}
BODIES: dict[str, type[BaseModel]] = {
    "post_proposal": ProposalInput, "post_proposal_promote": PromoteBody,
    "post_proposal_dismiss": DismissBody, "post_proposal_priority": PriorityBody,
}  # fmt: skip
QUERIES: dict[str, type[BaseModel]] = {"list_proposals": ListQuery}
RESPONSES: dict[str, dict[str, Any]] = {
    "post_proposal": {"201": PROPOSAL_SCHEMA, **WRITTEN},
    "list_proposals": {"200": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": PROPOSAL_SCHEMA}}}},
    "get_proposal": {"200": PROPOSAL_SCHEMA},
    "post_proposal_promote": {s: {"type": "object", "required": ["id", "promoted_to", "duplicate"]}
                     for s in ("200", "201")},
    "post_proposal_dismiss": WRITTEN, "post_proposal_priority": WRITTEN,
}  # fmt: skip
ONE = "/api/proposals/{proposal_id}"
ROUTES = [
    Route("/api/proposals", post_proposal, methods=["POST"]),
    Route("/api/proposals", list_proposals, methods=["GET"]),
    Route(ONE, get_proposal, methods=["GET"]),
    Route(ONE + "/promote", post_proposal_promote, methods=["POST"]),
    Route(ONE + "/dismiss", post_proposal_dismiss, methods=["POST"]),
    Route(ONE + "/priority", post_proposal_priority, methods=["POST"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "post_proposal": OPERATOR,
    "list_proposals": VIEWER,
    "get_proposal": VIEWER,
    "post_proposal_promote": OPERATOR,
    "post_proposal_dismiss": OPERATOR,
    "post_proposal_priority": OPERATOR,
}
