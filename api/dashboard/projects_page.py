"""Projects (`/projects`): every project with its repository and settings, a form to create
one, and each project's settings page (`/projects/{name}`), through the same commands as the
API's project routes."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context
from cairn.api.dashboard.render import (
    FieldErrors,
    Form,
    action,
    done,
    page,
    render,
    wait_for_writes,
)
from cairn.api.tasks.projects import project_shown, projects_and_counts
from cairn.commands.tasks.projects import create_project, set_project
from cairn.domain.errors import CairnError, NotFound, ValidationFailed
from cairn.domain.jobs.kinds import PUBLISH_MODES, RUNTIMES
from cairn.domain.tasks.project import SETTINGS, parse_settings
from cairn.domain.tasks.spec import NAME_PATTERN
from cairn.projections.tasks.projects import NAME as PROJECTS

FIELDS = {name: name for name in SETTINGS}


def _field(path: str) -> str | None:
    name = path.split(".")[-1]
    return name if name in FIELDS or name == "name" else None


def _form_values(project: dict[str, Any] | None) -> dict[str, Any]:
    settings = (project or {}).get("settings") or {}
    return {name: "" if settings.get(name) is None else str(settings[name]) for name in SETTINGS}


async def _settings_from(request: Request, form: Form, *, clear: bool) -> dict[str, Any]:
    """The form's settings, as the API takes them: an empty field clears (settings page) or
    is left out (create)."""
    sent: dict[str, Any] = {}
    for name in SETTINGS:
        value = form.get(name).strip()
        if value:
            sent[name] = int(value) if name == "concurrency" and value.isdigit() else value
        elif clear:
            sent[name] = None
    allow_local = context(request).settings.execution.allow_local_repositories
    return parse_settings(sent, allow_local=allow_local)


def _choices(request: Request) -> dict[str, Any]:
    local = context(request).settings.execution.allow_local_repositories
    forms = "owner/repo, an https:// URL, git@host:path" + (
        ", or a local path (this server allows them)" if local else "")  # fmt: skip
    return {"runtimes": [("", "the install's default")] + [(r, r) for r in RUNTIMES],
            "publish_modes": [("", "the install's default")] + [(m, m) for m in PUBLISH_MODES],
            "repository_help": f"What its tasks' runs check out: {forms}."}  # fmt: skip


@page
async def projects_page(request: Request) -> Response:
    data = {"projects": await projects_and_counts(request), "errors": FieldErrors(),
            "values": {"name": ""}, **_choices(request)}  # fmt: skip
    return await render(request, "projects.html", data)


async def _create_refused(request: Request, form: Form, error: CairnError) -> Response:
    values = {name: form.get(name) for name in form.values}
    data = {"projects": await projects_and_counts(request), "values": values,
            "errors": FieldErrors(error, _field), **_choices(request)}  # fmt: skip
    return await render(request, "projects.html", data, error.status if error.status < 500 else 422)


@action(on_error=_create_refused)
async def create(request: Request, form: Form) -> Response:
    name = form.get("name").strip()
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > 100:
        reason = "letters, digits, '_', '.' and '-', starting with a letter or digit"
        raise ValidationFailed(f"name: {reason}", [{"path": "name", "reason": reason}])
    settings = await _settings_from(request, form, clear=False)
    result = await create_project(context(request).store, name, settings, actor=actor(request))
    return done(request, f"/projects/{name}?min_position={result.position}", "created")


@page
async def project_page(request: Request) -> Response:
    name = _name(request)
    await wait_for_writes(request, PROJECTS)
    shown = await project_shown(request, name)
    data = {"name": name, "project": shown, "values": _form_values(shown),
            "errors": FieldErrors(), **_choices(request)}  # fmt: skip
    return await render(request, "project.html", data)


async def _save_refused(request: Request, form: Form, error: CairnError) -> Response:
    name = _name(request)
    data = {"name": name, "project": await project_shown(request, name),
            "values": {n: form.get(n) for n in SETTINGS}, "errors": FieldErrors(error, _field),
            **_choices(request)}  # fmt: skip
    return await render(request, "project.html", data, error.status if error.status < 500 else 422)


@action(on_error=_save_refused)
async def save(request: Request, form: Form) -> Response:
    name = _name(request)
    settings = await _settings_from(request, form, clear=True)
    result = await set_project(context(request).store, name, settings, actor=actor(request))
    return done(request, f"/projects/{name}?min_position={result.position}", "saved")


def _name(request: Request) -> str:
    name = str(request.path_params["name"])
    if len(name) > 100 or not re.fullmatch(NAME_PATTERN, name):
        raise NotFound("project names are letters, digits, '_', '.' and '-' (at most 100)")
    return name
