"""The OpenAPI document, built from the routes and the models they read and answer with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from cairn.api.context import ID_PATTERN, IDEMPOTENT, position_pattern
from cairn.api.roles import SIGNED, stronger
from cairn.api.schemas import JsonSchema, Media, components
from cairn.domain.limits import MAX_DEPTH

PROBLEM = {
    "description": "problem+json (RFC 9457) with a stable `code` and field paths",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
# The kind of id each path parameter holds.
PATH_IDS = {"task_id": "task", "dep_id": "task", "job_id": "job", "run_id": "job"}
# An artifact's path as the store serves it: `attempt-<n>/` then plain parts (no dot segment,
# separator or control character); the store refuses anything else.
ARTIFACT_PATH = r"^attempt-[0-9]{1,6}(/[^/.\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,100}){1,8}$"


@dataclass
class Declarations:
    """What each endpoint (by function name) reads and answers, beyond its route."""

    bodies: dict[str, type[BaseModel]] = field(default_factory=dict)
    queries: dict[str, type[BaseModel]] = field(default_factory=dict)
    # status -> schema of the success body; "text/event-stream" for a stream; Media for a
    # body in several media types
    responses: dict[str, dict[str, JsonSchema | str | Media]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # the weakest role that may call it


def build_openapi(
    routes: list[BaseRoute], declared: Declarations, max_body_bytes: int, partitions: int
) -> dict[str, Any]:
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
        },
        **components(),
    }  # fmt: skip
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = _operation(route, declared, schemas, partitions)
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # no convertor names
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cairn",
            "version": "2",
            "description": (
                "Task orchestration for AI coding agents. Limits: a request body is at most "
                f"{max_body_bytes} bytes (CAIRN_MAX_BODY_BYTES; 413 past it), JSON nests at "
                f"most {MAX_DEPTH} levels of objects and arrays (422 naming where), the request "
                "headers at most 64 KiB together (431); field limits are in each schema."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(
    route: Route, declared: Declarations, schemas: dict[str, Any], partitions: int
) -> dict[str, Any]:
    name = route.name
    role = declared.roles[name]
    above = stronger(role)
    op: dict[str, Any] = {
        "operationId": name,
        "summary": (route.endpoint.__doc__ or name.replace("_", " ")).strip().split("\n")[0],
        "description": f"Role: {role} (or {', '.join(above)})." if above else
                       "No token: signed by GitHub (X-Hub-Signature-256)." if role == SIGNED
                       else f"Role: {role}.",
        "x-cairn-role": role,
        "security": [] if role == SIGNED else [{"bearer": []}],
        "parameters": [_path_parameter(p) for p in route.param_convertors],
        "responses": _responses(declared.responses.get(name, {"200": {"type": "object"}})),
    }
    body = declared.bodies.get(name)
    if body is not None:
        schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[body.__name__] = schema
        # An empty body reads as {}: it is required only if the model requires a field.
        needed = bool(schema.get("required"))
        op["requestBody"] = {"required": needed, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body.__name__}"}}}}  # fmt: skip
        op["responses"]["413"] = PROBLEM
    query = declared.queries.get(name)
    if query is not None:
        op["parameters"] += _query_parameters(query)
    for parameter in op["parameters"]:
        if parameter["name"] == "min_position":  # the install's partitions, as checked
            parameter["schema"]["pattern"] = position_pattern(partitions)
    if name in IDEMPOTENT:
        op["parameters"].append(
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                        "pattern": "^[\\x21-\\x7e]+$"}}
        )  # fmt: skip
    return op


def _path_parameter(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if name in PATH_IDS:
        schema["pattern"] = ID_PATTERN.format(kind=PATH_IDS[name])
    if name == "path":
        schema["pattern"] = ARTIFACT_PATH
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = _inline(model.model_json_schema(by_alias=True))
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required,
         "schema": _not_null(prop),
         **({"description": prop["description"]} if "description" in prop else {})}
        for name, prop in schema["properties"].items()
    ]  # fmt: skip


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the `null` of an optional field: a query cannot send
    null, it leaves the parameter out."""
    schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
    if schema.get("default", 0) is None:
        del schema["default"]
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    return schema


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each local `$ref` replaced by its definition (a parameter stands alone)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _responses(success: dict[str, JsonSchema | str | Media]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in success.items():
        if isinstance(schema, Media):
            content: dict[str, Any] = {kind: {"schema": s} for kind, s in schema.content.items()}
        elif schema == "text/event-stream":  # each event: `event` (its type), `id`, `data`
            event = {"type": "object", "properties": {
                "event": {"type": "string"}, "id": {"type": "string"}, "data": {"type": "string"}}}
            content = {schema: {"schema": event}}
        elif isinstance(schema, str):  # another media type without a JSON body
            content = {schema: {"schema": {"type": "string"}}}
        else:
            content = {"application/json": {"schema": schema}}
        responses[status] = {"description": "success", "content": content}
    for status in ("401", "403", "404", "409", "422", "4XX", "503", "5XX"):
        responses[status] = PROBLEM
    return responses
