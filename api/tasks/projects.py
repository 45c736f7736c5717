"""Project routes: every project (those with settings and those the board knows only from their
tasks), one project, create one with its settings, set or clear some of them."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import actor, context, json_response, read_json, shown_id, written
from cairn.api.roles import OPERATOR, VIEWER
from cairn.api.schemas import COUNTS, INTEGER, NULLABLE_INTEGER, NULLABLE_STRING, STRING, ref
from cairn.commands.tasks.projects import create_project, set_project
from cairn.domain.errors import NotFound
from cairn.domain.tasks.project import (
    SETTINGS,
    Project,
    ProjectSettings,
    SettingsInput,
    parse_settings,
)
from cairn.domain.tasks.spec import NAME_PATTERN
from cairn.projections.tasks.projects import NAME as PROJECTS
from cairn.projections.tasks.projects import Projects

_NAME = re.compile(NAME_PATTERN)


def project_view(name: str, project: Project | None, counts: dict[str, Any] | None
                 ) -> dict[str, Any]:  # fmt: skip
    """A project as the API shows it: its settings (null where unset) and its tasks."""
    settings = msgspec.structs.asdict(project.settings if project else ProjectSettings())
    return {
        "project": name, "settings": settings, "version": project.version if project else 0,
        "counts": (counts or {}).get("counts", {}), "total": (counts or {}).get("total", 0),
        "updated_at": project.updated_at if project else None,
    }  # fmt: skip


def _name(request: Request) -> str:
    name = str(request.path_params["name"])
    if len(name) > 100 or not _NAME.fullmatch(name):
        raise NotFound(f"{shown_id(name)} is not a project name (letters, digits, '_', '.' "
                       "and '-', at most 100)")  # fmt: skip
    return name


async def projects_and_counts(request: Request) -> list[dict[str, Any]]:
    """Every project: the board's (by their tasks) and those with settings, by name."""
    ctx = context(request)
    boards, saved = await asyncio.gather(ctx.board.projects(),
                                         Projects(ctx.client, ctx.keys).all())  # fmt: skip
    counts = {str(b["project"]): b for b in boards}
    settings = {p.name: p for p in saved}
    return [project_view(n, settings.get(n), counts.get(n))
            for n in sorted(set(counts) | set(settings))]  # fmt: skip


async def get_projects(request: Request) -> Response:
    return json_response({"projects": await projects_and_counts(request)})


async def get_project(request: Request) -> Response:
    """One project; a name no task and no settings ever used is 404."""
    name = _name(request)
    view = await project_shown(request, name)
    if view is None:
        raise NotFound(f"project {name} has no tasks and no settings", project=name)
    return json_response(view)


async def project_shown(request: Request, name: str) -> dict[str, Any] | None:
    ctx = context(request)
    project, boards = await asyncio.gather(Projects(ctx.client, ctx.keys).get(name),
                                           ctx.board.projects())  # fmt: skip
    counts = next((b for b in boards if b["project"] == name), None)
    return project_view(name, project, counts) if project or counts else None


async def post_project(request: Request) -> Response:
    """Create a project with its settings (201); one that has settings already is 409."""
    return await _write(request, create=True)


async def patch_project(request: Request) -> Response:
    """Set some settings (null clears one); a project known only by its tasks gets them."""
    return await _write(request, create=False)


async def _write(request: Request, *, create: bool) -> Response:
    name = _name(request)
    ctx = context(request)
    body = await read_json(request)
    settings = parse_settings(body, allow_local=ctx.settings.execution.allow_local_repositories,
                              root="body")  # fmt: skip
    run = create_project if create else set_project
    result = await run(ctx.store, name, settings, actor=actor(request))
    return await written(request, result, PROJECTS, lambda: project_shown(request, name),
                         201 if create else 200)  # fmt: skip


SETTINGS_SCHEMA = {
    "type": "object",
    "properties": {**{name: NULLABLE_STRING for name in SETTINGS}, "concurrency": NULLABLE_INTEGER},
}
PROJECT = {
    "type": "object", "required": ["project", "settings", "version", "counts", "total"],
    "properties": {"project": STRING, "settings": SETTINGS_SCHEMA, "version": INTEGER,
                   "counts": COUNTS, "total": INTEGER, "updated_at": NULLABLE_STRING},
}  # fmt: skip
RESPONSES: dict[str, dict[str, Any]] = {
    "get_projects": {"200": {"type": "object", "required": ["projects"], "properties": {
        "projects": {"type": "array", "items": PROJECT}}}},
    "get_project": {"200": PROJECT},
    "post_project": {"201": PROJECT, "202": ref("CommandResult")},
    "patch_project": {"200": PROJECT, "202": ref("CommandResult")},
}  # fmt: skip
# The body is the settings to set (null clears one), checked by parse_settings with its paths.
BODIES: dict[str, type[BaseModel]] = {"post_project": SettingsInput, "patch_project": SettingsInput}
ROUTES = [
    Route("/api/v2/projects", get_projects, methods=["GET"]),
    Route("/api/v2/projects/{name}", get_project, methods=["GET"]),
    Route("/api/v2/projects/{name}", post_project, methods=["POST"]),
    Route("/api/v2/projects/{name}", patch_project, methods=["PATCH"]),
]
ROLES: dict[str, str] = {
    "get_projects": VIEWER, "get_project": VIEWER, "post_project": OPERATOR,
    "patch_project": OPERATOR,
}  # fmt: skip
