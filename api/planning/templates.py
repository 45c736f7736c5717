"""Template routes: the catalog (saved templates and the built-in pipelines never saved), one
template at a version, save a version, expand a version's steps with inputs."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import (
    actor,
    context,
    json_response,
    read_body,
    read_query,
    shown_id,
    written,
)
from cairn.api.schemas import BOOLEAN, INTEGER, OBJECT, STRING, ref
from cairn.commands.planning.templates import save_template
from cairn.domain.errors import NotFound, ValidationFailed
from cairn.domain.planning.template_inputs import expand
from cairn.domain.planning.templates import SLUG, Template, TemplateBody, TemplateVersion, resolve
from cairn.domain.tasks.pipelines import PIPELINES
from cairn.projections.planning.templates import NAME as TEMPLATES
from cairn.projections.planning.templates import Templates


class VersionQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: int | None = Field(default=None, ge=1, le=1_000_000,
                                description="a version number (default: the latest)")  # fmt: skip


class ExpandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict,
                                   description="a value for each input the template declares")
    version: int | None = Field(default=None, ge=1, le=1_000_000)


def template_view(slug: str, v: TemplateVersion, stored: Template | None) -> dict[str, Any]:
    numbers = stored.numbers() if stored else [1]
    return {
        "slug": slug, "version": v.number, "latest_version": numbers[-1], "versions": numbers,
        "builtin": slug in PIPELINES, "title": v.title, "description": v.description,
        "inputs": msgspec.to_builtins(v.inputs), "steps": msgspec.to_builtins(v.steps),
        "note": v.note, "saved_at": v.saved_at or None,
    }  # fmt: skip


def _slug(request: Request) -> str:
    slug = str(request.path_params["slug"])
    if not re.fullmatch(SLUG, slug):
        raise NotFound(f"{shown_id(slug)} is not a template slug (a-z, 0-9, '_' and '-', "
                       "at most 64)")  # fmt: skip
    return slug


async def _version(
    request: Request, slug: str, number: int | None
) -> tuple[TemplateVersion, Template | None]:
    ctx = context(request)
    stored = await Templates(ctx.client, ctx.keys).get(slug)
    try:
        return resolve(slug, stored, number), stored
    except ValidationFailed as e:
        raise NotFound(e.message, slug=slug, version=number) from e


async def list_templates(request: Request) -> Response:
    """The catalog: each template's latest version (built-in pipelines included)."""
    ctx = context(request)
    saved = {t.slug: t for t in await Templates(ctx.client, ctx.keys).saved()}
    items = []
    for slug in sorted(set(PIPELINES) | set(saved)):
        latest = resolve(slug, saved.get(slug))
        items.append(template_view(slug, latest, saved.get(slug)))
    return json_response({"items": items})


async def get_template(request: Request) -> Response:
    slug = _slug(request)
    query = read_query(request, VersionQuery)
    found, stored = await _version(request, slug, query.version)
    return json_response(template_view(slug, found, stored))


async def post_template(request: Request) -> Response:
    """Save a template version: 201 when it is new, 200 when the latest already says it."""
    body = await read_body(request, TemplateBody)
    ctx = context(request)
    result = await save_template(ctx.store, body, actor=actor(request))

    async def shown() -> dict[str, Any]:
        found, stored = await _version(request, body.slug, None)
        return template_view(body.slug, found, stored)

    return await written(request, result, TEMPLATES, shown, 201 if result.position else 200)


async def post_template_expand(request: Request) -> Response:
    """A version's steps with its inputs filled in (nothing is written)."""
    slug = _slug(request)
    body = await read_body(request, ExpandBody)
    found, _ = await _version(request, slug, body.version)
    steps = expand(found.inputs, found.steps, body.inputs)
    return json_response({"slug": slug, "version": found.number, "steps": steps})


STEP = {"type": "object", "required": ["id", "title", "instructions"],
        "properties": {"id": STRING, "title": STRING, "instructions": STRING}}  # fmt: skip
TEMPLATE_SCHEMA = {
    "type": "object",
    "required": ["slug", "version", "latest_version", "versions", "builtin", "title", "inputs",
                 "steps"],
    "properties": {"slug": STRING, "version": INTEGER, "latest_version": INTEGER,
                   "versions": {"type": "array", "items": INTEGER}, "builtin": BOOLEAN,
                   "title": STRING, "description": STRING, "note": STRING,
                   "inputs": {"type": "array", "items": OBJECT},
                   "steps": {"type": "array", "items": STEP},
                   "saved_at": {"type": ["string", "null"]}},
}  # fmt: skip
BODIES: dict[str, type[BaseModel]] = {"post_template": TemplateBody,
                                      "post_template_expand": ExpandBody}  # fmt: skip
QUERIES: dict[str, type[BaseModel]] = {"get_template": VersionQuery}
RESPONSES: dict[str, dict[str, Any]] = {
    "list_templates": {"200": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": TEMPLATE_SCHEMA}}}},
    "get_template": {"200": TEMPLATE_SCHEMA},
    "post_template": {"200": TEMPLATE_SCHEMA, "201": TEMPLATE_SCHEMA,
                      "202": ref("CommandResult")},
    "post_template_expand": {"200": {"type": "object", "required": ["slug", "version", "steps"],
                             "properties": {"slug": STRING, "version": INTEGER,
                                            "steps": {"type": "array", "items": STEP}}}},
}  # fmt: skip
ROUTES = [
    Route("/api/templates", list_templates, methods=["GET"]),
    Route("/api/templates", post_template, methods=["POST"]),
    Route("/api/templates/{slug}", get_template, methods=["GET"]),
    Route("/api/templates/{slug}/expand", post_template_expand, methods=["POST"]),
]
# The weakest role that may call each route (api/roles.py), by route name: a saved version
# changes what every board task of its type runs, so saving is the admin's.
ROLES: dict[str, str] = {
    "list_templates": "viewer",
    "get_template": "viewer",
    "post_template": "admin",
    "post_template_expand": "viewer",
}
