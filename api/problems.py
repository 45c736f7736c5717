"""problem+json (RFC 9457) responses: every error names its code, and its field paths.

A client's mistake is answered and not logged; an unexpected error is answered 500 and logged
with where it happened, never with what the request carried (ids and bodies may hold secrets).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.domain.credentials import credential_kinds
from cairn.domain.errors import CairnError

PROBLEM_BASE = "https://cairn.dev/problems/"
RETRY_AFTER_S = 2  # a 503's advice: the store is restarting or briefly out of reach
MAX_INSTANCE = 200  # characters of a request path an answer repeats

log = logging.getLogger("cairn.api")


class BodyTooLarge(CairnError):
    """A request body over CAIRN_MAX_BODY_BYTES (refused before more of it is read)."""

    code = "body_too_large"
    status = 413


def problem(
    status: int,
    code: str,
    detail: str,
    instance: str = "",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
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
    retry = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    return Response(
        orjson.dumps(body), status, {**retry, **(headers or {})}, "application/problem+json"
    )


def safe_instance(scope: Scope) -> str:
    """The request path as an answer may repeat it: short and free of secrets, else the
    route's template (`/api/v2/tasks/{task_id}`)."""
    path = str(scope.get("path", ""))
    if len(path) <= MAX_INSTANCE and not credential_kinds(path):
        return path
    route = scope.get("route")
    return route.path if isinstance(route, Route) else ""


def problem_from(error: CairnError, scope: Scope) -> Response:
    return problem(error.status, error.code, error.message, safe_instance(scope), error.details)


async def handle_cairn_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CairnError)
    return problem_from(exc, request.scope)


async def handle_http(request: Request, exc: Exception) -> Response:
    status = int(getattr(exc, "status_code", 500))
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    detail = str(getattr(exc, "detail", ""))
    return problem(status, code, detail, safe_instance(request.scope), headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (routes are split by method)."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """500, logged by type and place only: the message may quote the request."""
    log.error("%s", describe_unexpected(request.scope, exc))
    detail = "an unexpected error occurred; see the server log"
    return problem(500, "internal_error", detail, safe_instance(request.scope))


def describe_unexpected(scope: Scope, exc: BaseException) -> str:
    route = scope.get("route")
    where = route.path if isinstance(route, Route) else "(no route)"
    frames = traceback.extract_tb(exc.__traceback__)[-8:][::-1]  # innermost first
    stack = " <- ".join(f"{f.name} ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})" for f in frames)
    causes: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    caused_by = f", caused by {' <- '.join(causes)}" if causes else ""
    return (
        f"unexpected {type(exc).__name__}{caused_by} answering {scope.get('method')} {where}"
        f" at {stack}"
    )


class ProblemBoundary:
    """ASGI middleware around everything else: a CairnError raised outside a route (such as
    a store outage met by the auth middleware) becomes its problem+json, and any other error
    a 500 logged by handle_unexpected, never re-raised for the server to log its traceback
    (whose message could quote the request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except CairnError as e:
            if not started:
                await problem_from(e, scope)(scope, receive, send)
        except Exception as e:
            response = await handle_unexpected(Request(scope), e)
            if not started:
                await response(scope, receive, send)
