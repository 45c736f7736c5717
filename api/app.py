"""The Starlette application: routes, auth, problem+json errors, health."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.api import workers
from cairn.api.auth import BearerAuth, store_token
from cairn.api.context import Context, json_response
from cairn.api.dashboard.routes import ROUTES as DASHBOARD
from cairn.api.jobs import (
    followups,
    live,
    pulls,
    queue,
    quick_runs,
    runs,
    transcripts,
    webhooks,
)
from cairn.api.metrics import ProcessMetrics, RequestMetrics, TimedEventStore, metrics, readyz
from cairn.api.openapi import Declarations, build_openapi
from cairn.api.orchestrator import routes as orchestrator
from cairn.api.planning import imports, proposals, schedules, templates
from cairn.api.problems import ProblemBoundary, handle_cairn_error, handle_http
from cairn.api.roles import guard_routes
from cairn.api.tasks import projects
from cairn.api.tasks import routes as tasks
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.projections.jobs.queue import Queue
from cairn.projections.projector import LIBRARIES
from cairn.projections.tasks.board import Board
from cairn.streams.driver import Client
from cairn.streams.functions import load_all
from cairn.streams.keys import Keys

log = logging.getLogger("cairn.api")

# The route modules, in the order their routes are matched; each declares its routes' roles,
# bodies, queries and responses beside them.
MODULES = (
    tasks, projects, queue, runs, transcripts, followups, quick_runs, workers, imports, proposals,
    templates, schedules, webhooks, pulls, orchestrator, live,
)


def _declared(name: str) -> dict[str, Any]:
    """Each module's declarations of `name`, by operation (a handler's name: one per module)."""
    found: dict[str, Any] = {}
    for module in MODULES:
        for key, value in getattr(module, name, {}).items():
            if key in found:
                raise RuntimeError(f"{module.__name__} declares {key} in {name}, as another "
                                   "module does: an operation is named by its handler")
            found[key] = value
    return found


DECLARED = Declarations(
    bodies=_declared("BODIES"), queries=_declared("QUERIES"), responses=_declared("RESPONSES"),
    roles=_declared("ROLES"),
)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


def create_app(settings: Settings, client: Client) -> Starlette:
    """The API for one install, on `client` (the caller owns and closes it)."""
    keys = Keys(settings.prefix, settings.partitions)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),  # any live token (Prometheus: `authorization` in the job)
        *(route for module in MODULES for route in module.ROUTES),
    ]
    guard_routes(routes, DECLARED.roles)  # a route that declares no role stops the start
    document = build_openapi(routes, DECLARED, settings.max_body_bytes, settings.partitions)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    routes.append(Route("/openapi.json", openapi))
    routes += DASHBOARD  # the pages at / (added after the document: they are not the API)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.admin_token:
            await store_token(client, keys, settings.admin_token, "admin", "admin")
        try:  # Cairn's functions, for the processes whose users may only call them
            await load_all(client, LIBRARIES)
        except CairnError as e:  # the store is down: the first call that misses them loads them
            log.warning("could not load Cairn's functions into the store yet: %s", e.message)
        yield

    measured = ProcessMetrics()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # ProblemBoundary first, so it wraps the auth middleware too; no handler for
        # Exception: Starlette's would re-raise it for the server to log with its message.
        middleware=[Middleware(RequestMetrics, metrics=measured), Middleware(ProblemBoundary),
                    Middleware(BearerAuth, client=client, keys=keys)],
        exception_handlers={CairnError: handle_cairn_error, HTTPException: handle_http},
    )
    app.state.metrics = measured
    store = TimedEventStore(client, keys, settings.command_ttl_s, metrics=measured)
    app.state.ctx = Context(settings, client, keys, store, Board(client, keys), Queue(client, keys))
    return app
