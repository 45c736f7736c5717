"""PRD import routes: preview (writes no event), commit (idempotent), and an import's state
from the imports read model."""

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
    written,
)
from cairn.api.problems import BodyTooLarge
from cairn.api.roles import OPERATOR, VIEWER
from cairn.api.schemas import BOOLEAN, INTEGER, NULLABLE_STRING, OBJECT, STRING, STRINGS, ref
from cairn.commands.planning.import_plans import request_agent_plan
from cairn.commands.planning.imports import commit_import, preview_import, recall_preview
from cairn.domain.errors import NotFound, ValidationFailed
from cairn.domain.planning.imports import ImportJob
from cairn.domain.planning.preview import ONE_OF_SOURCE_OR_PLAN, ImportRequest, shows_something
from cairn.projections.planning.imports import NAME as IMPORTS
from cairn.projections.planning.imports import Imports


class PreviewBody(ImportRequest):
    planner: Literal["deterministic", "agent"] = Field(
        default="deterministic", description="agent: a job on a worker plans the PRD"
    )
    repository: str | None = Field(default=None, max_length=2_000,
                                   description="the agent planner's repository")  # fmt: skip
    runtime: Literal["codex", "gemini", "claude", "universal"] | None = None


COMMIT_SCHEMA: dict[str, Any] = {"anyOf": [
    *ONE_OF_SOURCE_OR_PLAN["anyOf"],
    {"required": ["preview_id"], "properties": {"preview_id": {"type": "string"}}},
]}  # fmt: skip


class CommitBody(ImportRequest):
    """`preview_id` alone (a kept preview), or the preview's body (with or without it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=COMMIT_SCHEMA)
    preview_id: str | None = Field(
        default=None, max_length=64, pattern=r"^preview-\d{2,4}-[0-9a-z]{16,40}$"
    )


async def _body(request: Request, model: type[PreviewBody] | type[CommitBody]) -> Any:
    """The body; one past the size limit names `source`, the only field that can grow so."""
    try:
        return await read_body(request, model)
    except BodyTooLarge as e:
        limit = context(request).settings.max_body_bytes
        reason = f"the request is over {limit} bytes: send a smaller PRD, or split it"
        raise BodyTooLarge(e.message, max_body_bytes=limit,
                           errors=[{"path": "source", "reason": reason}]) from None  # fmt: skip


async def post_preview(request: Request) -> Response:
    """Preview a PRD import: tasks, edges, roots, waves, warnings and the diff against the
    document's last import; nothing is written. The agent planner queues a planning job."""
    body: PreviewBody = await _body(request, PreviewBody)
    ctx = context(request)
    wanted = ImportRequest.model_validate(body.model_dump(exclude={"planner", "repository",
                                                                   "runtime"}))  # fmt: skip
    if body.planner == "agent":
        if not shows_something(wanted.source):
            reason = "the agent planner needs the PRD as source"
            raise ValidationFailed(reason, [{"path": "source", "reason": reason}])
        result, job_id = await request_agent_plan(
            ctx.store, wanted, ctx.settings.contract(), actor=actor(request),
            repository=body.repository, runtime=body.runtime,
        )  # fmt: skip
        await ctx.caught_up(result.position, IMPORTS)
        view = {"import_id": result.id, "job_id": job_id, "status": "planning"}
        return json_response(view, 202, position_headers(result))
    return json_response((await preview_import(ctx.store, wanted)).view())


async def post_commit(request: Request) -> Response:
    """Commit an import: the import and every task and edge, in one append; the same preview
    committed again creates nothing."""
    body: CommitBody = await _body(request, CommitBody)
    ctx = context(request)
    fields = body.model_dump(exclude={"preview_id"}, exclude_unset=True)
    if body.preview_id and not shows_something(body.source) and body.plan is None:
        wanted = await recall_preview(ctx.store, body.preview_id)
    else:
        wanted = ImportRequest.model_validate(fields)
    result, previewed = await commit_import(
        ctx.store, wanted, ctx.settings.flags, actor=actor(request), preview_id=body.preview_id
    )

    async def shown() -> dict[str, Any] | None:
        imports = await Imports(ctx.client, ctx.keys).get([previewed.import_id])
        found = imports.get(previewed.import_id)
        return import_view(found) if found is not None else None

    status = 201 if result.position and not result.duplicate else 200
    return await written(request, result, IMPORTS, shown, status)


async def get_import(request: Request) -> Response:
    import_id = path_id(request, "import")
    found = (await Imports(context(request).client, context(request).keys).get([import_id])).get(
        import_id
    )
    if found is None:
        raise NotFound(f"import {import_id} does not exist", import_id=import_id)
    return json_response(import_view(found))


def import_view(job: ImportJob) -> dict[str, Any]:
    return {
        "id": job.id, "version": job.version, "project": job.project, "document": job.document,
        "status": job.status, "revision": job.revision, "planner": job.planner,
        "granularity": job.granularity, "auto_ready": job.auto_ready,
        "max_parallelism_hint": job.max_parallelism_hint,
        "task_count": sum(1 for t in job.tasks.values() if not t.removed),
        "edge_count": job.edge_count, "warnings": job.warnings,
        "created_task_ids": job.created_task_ids, "released_task_ids": job.released,
        "tasks": {k: t.task_id for k, t in job.tasks.items() if not t.removed},
        "last_commit": job.last, "preview_id": job.preview_id or None,
        "planner_job_id": job.planner_job_id, "plan_errors": job.plan_errors,
        "created_at": job.created_at, "updated_at": job.updated_at,
    }  # fmt: skip


IMPORT_SCHEMA = {
    "type": "object",
    "required": ["id", "status", "task_count", "edge_count", "warnings", "created_task_ids"],
    "properties": {
        "id": STRING, "version": INTEGER, "project": STRING, "document": STRING,
        "status": {"type": "string", "enum": ["planning", "planned", "plan_failed", "committed"]},
        "revision": INTEGER, "task_count": INTEGER, "edge_count": INTEGER,
        "warnings": {"type": "array", "items": OBJECT}, "created_task_ids": STRINGS,
        "released_task_ids": STRINGS, "auto_ready": BOOLEAN, "preview_id": NULLABLE_STRING,
        "planner_job_id": NULLABLE_STRING, "tasks": OBJECT, "last_commit": OBJECT,
    },
}  # fmt: skip
PREVIEW_SCHEMA = {
    "type": "object",
    "required": ["preview_id", "import_id", "tasks", "edges", "roots", "blocked_roots", "waves",
                 "warnings", "diff", "counts"],
    "properties": {
        "preview_id": STRING, "import_id": STRING, "project": STRING, "document": STRING,
        "tasks": {"type": "array", "items": OBJECT},
        "edges": {"type": "array", "items": OBJECT}, "roots": STRINGS,
        "blocked_roots": {"type": "array", "items": OBJECT},
        "waves": {"type": "array", "items": STRINGS},
        "warnings": {"type": "array", "items": OBJECT},
        "skipped": {"type": "array", "items": OBJECT}, "diff": OBJECT, "counts": OBJECT,
    },
}  # fmt: skip
PLANNING_SCHEMA = {
    "type": "object",
    "required": ["import_id", "job_id", "status"],
    "properties": {"import_id": STRING, "job_id": STRING, "status": STRING},
}
BODIES: dict[str, type[BaseModel]] = {"post_preview": PreviewBody, "post_commit": CommitBody}
RESPONSES: dict[str, dict[str, Any]] = {
    "post_preview": {"200": PREVIEW_SCHEMA, "202": PLANNING_SCHEMA},
    "post_commit": {"200": IMPORT_SCHEMA, "201": IMPORT_SCHEMA, "202": ref("CommandResult")},
    "get_import": {"200": IMPORT_SCHEMA},
}
ROUTES = [
    Route("/api/v2/import/prd/preview", post_preview, methods=["POST"]),
    Route("/api/v2/import/prd/commit", post_commit, methods=["POST"]),
    Route("/api/v2/import/{import_id}", get_import, methods=["GET"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "post_preview": OPERATOR,
    "post_commit": OPERATOR,
    "get_import": VIEWER,
}
