"""The OpenAPI document, built from the routes and the pydantic models they accept."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from cairn.api.context import IDEMPOTENT

PROBLEM = {
    "description": "problem+json (RFC 9457) with a stable `code` and field paths",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def build_openapi(routes: list[BaseRoute], bodies: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """`bodies` maps an endpoint function name to the model of its JSON body."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "code", "detail"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "code": {"type": "string"},
                "detail": {"type": "string"}, "instance": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "reason": {"type": "string"}}}},
            },
        }
    }  # fmt: skip
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {
                "operationId": route.name,
                "summary": (route.endpoint.__doc__ or route.name.replace("_", " ")).strip(),
                "security": [{"bearer": []}],
                "responses": {"2XX": {"description": "success"}, "4XX": PROBLEM, "5XX": PROBLEM},
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in route.param_convertors
                ],
            }
            model = bodies.get(route.name)
            if model is not None:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}  # fmt: skip
            if route.name in IDEMPOTENT:
                op["parameters"].append(
                    {"name": "Idempotency-Key", "in": "header", "required": False,
                     "schema": {"type": "string", "maxLength": 200}}
                )  # fmt: skip
            paths.setdefault(route.path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cairn",
            "version": "2",
            "description": "Task orchestration for AI coding agents",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
