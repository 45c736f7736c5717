"""problem+json (RFC 9457) responses: every error names its code, and its field paths."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cairn.domain.errors import CairnError

PROBLEM_BASE = "https://cairn.dev/problems/"


def problem(
    status: int, code: str, detail: str, instance: str = "", extra: dict[str, Any] | None = None
) -> Response:
    body = {
        **(extra or {}),  # the standard members below always win over a detail's name
        "type": PROBLEM_BASE + code,
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": instance,
    }
    return Response(orjson.dumps(body), status, media_type="application/problem+json")


def problem_from(error: CairnError, request: Request) -> Response:
    return problem(error.status, error.code, error.message, request.url.path, error.details)


async def handle_cairn_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CairnError)
    return problem_from(exc, request)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    return problem(
        500, "internal_error", "an unexpected error occurred; see the server log", request.url.path
    )


async def handle_http(request: Request, exc: Exception) -> Response:
    status = int(getattr(exc, "status_code", 500))
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    return problem(status, code, str(getattr(exc, "detail", "")), request.url.path)
