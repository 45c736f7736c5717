"""The Starlette application: routes, auth, problem+json errors, health."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.api import imports, proposals, queue, quick_runs, runs, tasks, templates, workers
from cairn.api.auth import BearerAuth, store_token
from cairn.api.context import Context, context, json_response
from cairn.api.dashboard.routes import ROUTES as DASHBOARD
from cairn.api.openapi import Declarations, build_openapi
from cairn.api.problems import ProblemBoundary, handle_cairn_error, handle_http, problem
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError, InfrastructureError
from cairn.projections.board import Board
from cairn.projections.queue import Queue
from cairn.streams.connection import Client
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore

DECLARED = Declarations(
    bodies={**tasks.BODIES, **queue.BODIES, **quick_runs.BODIES, **workers.BODIES, **runs.BODIES,
            **imports.BODIES, **proposals.BODIES, **templates.BODIES},
    queries={**tasks.QUERIES, **queue.QUERIES, **runs.QUERIES, **proposals.QUERIES,
             **templates.QUERIES},
    responses={**tasks.RESPONSES, **queue.RESPONSES, **quick_runs.RESPONSES, **workers.RESPONSES,
               **runs.RESPONSES, **imports.RESPONSES, **proposals.RESPONSES,
               **templates.RESPONSES},
)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await context(request).client.ping()
    except InfrastructureError as e:
        return problem(503, "store_unavailable", f"the store does not answer: {e.message}",
                       "/readyz")  # fmt: skip
    return json_response({"status": "ready"})


def create_app(settings: Settings, client: Client) -> Starlette:
    """The API for one install, on `client` (the caller owns and closes it)."""
    keys = Keys(settings.prefix, settings.partitions)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *tasks.ROUTES,
        *queue.ROUTES,
        *runs.ROUTES,
        *quick_runs.ROUTES,
        *workers.ROUTES,
        *imports.ROUTES,
        *proposals.ROUTES,
        *templates.ROUTES,
    ]
    document = build_openapi(routes, DECLARED, settings.max_body_bytes, settings.partitions)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    routes.append(Route("/openapi.json", openapi))
    routes += DASHBOARD  # the pages at / (added after the document: they are not the API)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.admin_token:
            await store_token(client, keys, settings.admin_token, "admin", "admin")
        yield

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # ProblemBoundary first, so it wraps the auth middleware too; no handler for
        # Exception: Starlette's would re-raise it for the server to log with its message.
        middleware=[Middleware(ProblemBoundary), Middleware(BearerAuth, client=client, keys=keys)],
        exception_handlers={CairnError: handle_cairn_error, HTTPException: handle_http},
    )
    store = EventStore(client, keys, settings.command_ttl_s)
    app.state.ctx = Context(settings, client, keys, store, Board(client, keys), Queue(client, keys))
    return app
