"""Orchestrator runs over HTTP: the service catalog (admins write it) and the runs (operators
submit, approve, reject and cancel them; an approval names its actor, and with four eyes it is
not the submitter's)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cairn.api.context import (
    actor,
    context,
    event_view,
    idempotency_key,
    json_response,
    path_id,
    read_body,
    read_json,
    read_query,
    written,
)
from cairn.api.jobs.queue import _Wire
from cairn.api.jobs.run_views import artifact_view
from cairn.api.jobs.runs import artifacts_of
from cairn.api.roles import ADMIN, OPERATOR, VIEWER
from cairn.commands.jobs.service_runs import cancel_run
from cairn.commands.orchestrator.runs import approve_run, reject_run, submit_run
from cairn.commands.orchestrator.services import define_service, remove_service
from cairn.domain.errors import NotFound
from cairn.domain.orchestrator.runs import REASON_MAX, STATES, Run, RunRequest
from cairn.domain.orchestrator.services import NAME_PATTERN, Service, ServiceSpec, parse_service
from cairn.domain.tasks.spec import Visible
from cairn.projections.orchestrator.catalog import Runs, Services

RUNS = "orchestrator_runs"
SERVICES = "services"
PATCH_MAX = 2 * 1024 * 1024  # the diff a run page shows inline


def service_view(service: Service) -> dict[str, Any]:
    return {"name": service.name, "id": service.id, "version": service.version,
            "spec": service.spec, "holder": service.holder, "waiting": service.waiting,
            "lastCheck": service.last_check, "createdAt": service.created_at,
            "updatedAt": service.updated_at}  # fmt: skip


def run_view(run: Run) -> dict[str, Any]:
    return {
        "id": run.id, "version": run.version, "service": run.service, "state": run.state,
        "instruction": run.instruction, "runtime": run.runtime, "approval": run.approval,
        "needsApproval": run.needs_approval, "submittedBy": run.submitted_by,
        "approvedBy": run.approved_by, "rejectedBy": run.rejected_by,
        "cancelRequestedBy": run.cancel_requested_by, "waitingBehind": run.waiting_behind,
        "reason": run.reason, "planJob": run.plan_job, "applyJob": run.apply_job,
        "files": run.files, "patch": run.patch, "plan": run.plan, "proposal": run.proposal,
        "redacted": run.redacted,
        "expiresAt": run.expires_at, "rolledBack": run.rolled_back, "commit": run.commit,
        "createdAt": run.created_at, "startedAt": run.started_at,
        "finishedAt": run.finished_at, "updatedAt": run.updated_at, "timeline": run.timeline,
        "allowedPaths": run.spec.get("allowedPaths", []),
    }  # fmt: skip


def _name(request: Request) -> str:
    name = str(request.path_params["name"])
    if len(name) > 63 or not re.fullmatch(NAME_PATTERN, name):
        raise NotFound("no such service: a service name is lowercase letters, digits, '.', '_' "
                       "and '-', at most 63")  # fmt: skip
    return name


async def _service(request: Request, name: str) -> Service:
    ctx = context(request)
    found = await Services(ctx.client, ctx.keys).get(name)
    if found is None:
        raise NotFound(f"no service named {name!r} in the catalog", service=name)
    return found


async def _run(request: Request, run_id: str) -> Run:
    ctx = context(request)
    found = await Runs(ctx.client, ctx.keys).get(run_id)
    if found is None:
        raise NotFound(f"no orchestrator run {run_id}", run_id=run_id)
    return found


# ---- services -------------------------------------------------------------------------------


async def list_services(request: Request) -> Response:
    ctx = context(request)
    found = await Services(ctx.client, ctx.keys).all()
    return json_response({"items": [service_view(s) for s in found]})


async def get_service(request: Request) -> Response:
    return json_response(service_view(await _service(request, _name(request))))


async def post_service(request: Request) -> Response:
    """A new service (409 if the name is taken: PUT replaces)."""
    return await _define(request, None, create=True)


async def put_service(request: Request) -> Response:
    """Create or replace a service's definition (the runs going keep the one they started with)."""
    return await _define(request, _name(request), create=False)


async def _define(request: Request, name: str | None, *, create: bool) -> Response:
    ctx = context(request)
    spec = parse_service(await read_json(request), ctx.settings.contract(), name=name)
    result = await define_service(ctx.store, spec, actor=actor(request), create=create)

    async def shown() -> dict[str, Any] | None:
        found = await Services(ctx.client, ctx.keys).get(str(spec["name"]))
        return service_view(found) if found else None

    return await written(request, result, SERVICES, shown, 201 if create else 200)


async def delete_service(request: Request) -> Response:
    """Remove a service from the catalog (refused while runs hold it or wait for it)."""
    ctx = context(request)
    name = _name(request)
    await _service(request, name)
    await remove_service(ctx.store, name, actor=actor(request))
    return Response(status_code=204)


# ---- runs -----------------------------------------------------------------------------------


class RunBody(_Wire):
    service: str = Field(min_length=1, max_length=63, pattern=NAME_PATTERN)
    instruction: Annotated[str, Field(min_length=1, max_length=20_000), *Visible]
    runtime: Literal["claude", "codex", "gemini"] | None = None
    approval: Literal["auto", "required"] = "auto"


class ReasonBody(_Wire):
    reason: Annotated[str, Field(min_length=1, max_length=REASON_MAX), *Visible]


class RunsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str | None = Field(default=None, max_length=63)
    state: Literal[STATES] | None = None  # type: ignore[valid-type]
    cursor: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=50, ge=1, le=200)


async def post_orchestrator_run(request: Request) -> Response:
    """A run on a service (201: the run, planning or waiting for the service)."""
    body: RunBody = await read_body(request, RunBody)
    ctx = context(request)
    request_ = RunRequest(service=body.service, instruction=body.instruction,
                          runtime=body.runtime, approval=body.approval)  # fmt: skip
    result = await submit_run(ctx.store, request_, ctx.settings.contract(), actor=actor(request),
                              approval_timeout_s=ctx.settings.approval_timeout_s,
                              idempotency_key=idempotency_key(request))  # fmt: skip
    return await written(request, result, RUNS, _shown(request, result.id), 201)


def _shown(request: Request, run_id: str) -> Any:
    async def shown() -> dict[str, Any] | None:
        ctx = context(request)
        found = await Runs(ctx.client, ctx.keys).get(run_id)
        return run_view(found) if found else None

    return shown


async def list_orchestrator_runs(request: Request) -> Response:
    """Runs newest first, by service and state, a page at a time (`cursor`: the last one's id)."""
    query = read_query(request, RunsQuery)
    ctx = context(request)
    page, cursor = await Runs(ctx.client, ctx.keys).page(
        service=query.service, state=query.state, after=query.cursor, limit=query.limit)
    return json_response({"items": [run_view(r) for r in page], "nextCursor": cursor})


async def get_orchestrator_run(request: Request) -> Response:
    return json_response(run_view(await _run(request, path_id(request, "orun", "run_id"))))


async def get_orchestrator_run_events(request: Request) -> Response:
    """The run's events and its jobs', in the order they were written (the audit trail)."""
    run = await _run(request, path_id(request, "orun", "run_id"))
    store = context(request).store
    found = await store.read_aggregates([run.id, *run.jobs])
    events = [{**event_view(e), "aggregate": e.agg} for es in found.values() for e in es]
    events.sort(key=lambda e: (e["ts"], e["position"] or ""))
    return json_response({"items": events})


async def get_orchestrator_run_artifacts(request: Request) -> Response:
    """Every artifact of the run's jobs: logs, patches, the plan, run_summary.json."""
    run = await _run(request, path_id(request, "orun", "run_id"))
    ctx = context(request)
    jobs = await ctx.queue.get_jobs(run.jobs)
    items = [{**artifact_view(a), "job": job_id, "phase": phase}
             for phase, job_id in (("plan", run.plan_job), ("apply", run.apply_job))
             if job_id and job_id in jobs for a in jobs[job_id].artifacts]  # fmt: skip
    return json_response({"items": items})


def read_artifact(request: Request, ref: str, limit: int = PATCH_MAX) -> tuple[str, bool]:
    """An artifact a run names (its patch, its plan) as text, up to `limit` bytes, and whether
    it was cut there; NotFound (or OSError) when it is not on this server."""
    job_id, _, path = ref.removeprefix("/api/queue/jobs/").partition("/artifacts/")
    with artifacts_of(request).open(job_id, path).open("rb") as file:
        data = file.read(limit + 1)
    return data[:limit].decode(errors="replace"), len(data) > limit


async def get_orchestrator_run_diff(request: Request) -> Response:
    """The change the run's plan made, as a patch (the redacted text the approval is for)."""
    run = await _run(request, path_id(request, "orun", "run_id"))
    if not run.patch:
        raise NotFound(f"run {run.id} has no diff yet (it is {run.state})", run_id=run.id)
    text, _ = read_artifact(request, run.patch)
    return PlainTextResponse(text, media_type="text/x-diff",
                             headers={"X-Content-Type-Options": "nosniff"})  # fmt: skip


async def approve_orchestrator_run(request: Request) -> Response:
    run_id = path_id(request, "orun", "run_id")
    ctx = context(request)
    result = await approve_run(ctx.store, run_id, actor=actor(request),
                               four_eyes=ctx.settings.four_eyes)  # fmt: skip
    return await written(request, result, RUNS, _shown(request, run_id))


async def reject_orchestrator_run(request: Request) -> Response:
    run_id = path_id(request, "orun", "run_id")
    body: ReasonBody = await read_body(request, ReasonBody)
    ctx = context(request)
    result = await reject_run(ctx.store, run_id, body.reason, actor=actor(request))
    return await written(request, result, RUNS, _shown(request, run_id))


async def cancel_orchestrator_run(request: Request) -> Response:
    """Cancel in any state: at once with no job going, else through its job (a cancel during
    `restart` or `verify` rolls back first; the run ends `cancelled`)."""
    run_id = path_id(request, "orun", "run_id")
    ctx = context(request)
    result = await cancel_run(ctx.store, run_id, actor=actor(request))
    return await written(request, result, RUNS, _shown(request, run_id), 202)


RUN = "/api/orchestrator/runs/{run_id}"
SERVICE = "/api/orchestrator/services/{name}"
ROUTES = [
    Route("/api/orchestrator/services", list_services, methods=["GET"]),
    Route("/api/orchestrator/services", post_service, methods=["POST"]),
    Route(SERVICE, get_service, methods=["GET"]),
    Route(SERVICE, put_service, methods=["PUT"]),
    Route(SERVICE, delete_service, methods=["DELETE"]),
    Route("/api/orchestrator/runs", list_orchestrator_runs, methods=["GET"]),
    Route("/api/orchestrator/runs", post_orchestrator_run, methods=["POST"]),
    Route(RUN, get_orchestrator_run, methods=["GET"]),
    Route(RUN + "/events", get_orchestrator_run_events, methods=["GET"]),
    Route(RUN + "/artifacts", get_orchestrator_run_artifacts, methods=["GET"]),
    Route(RUN + "/diff", get_orchestrator_run_diff, methods=["GET"]),
    Route(RUN + "/approve", approve_orchestrator_run, methods=["POST"]),
    Route(RUN + "/reject", reject_orchestrator_run, methods=["POST"]),
    Route(RUN + "/cancel", cancel_orchestrator_run, methods=["POST"]),
]
ROLES: dict[str, str] = {
    "list_services": VIEWER, "get_service": VIEWER, "post_service": ADMIN,
    "put_service": ADMIN, "delete_service": ADMIN, "list_orchestrator_runs": VIEWER,
    "post_orchestrator_run": OPERATOR, "get_orchestrator_run": VIEWER,
    "get_orchestrator_run_events": VIEWER, "get_orchestrator_run_artifacts": VIEWER,
    "get_orchestrator_run_diff": VIEWER, "approve_orchestrator_run": OPERATOR,
    "reject_orchestrator_run": OPERATOR, "cancel_orchestrator_run": OPERATOR,
}  # fmt: skip
BODIES: dict[str, type[BaseModel]] = {
    "post_service": ServiceSpec, "put_service": ServiceSpec, "post_orchestrator_run": RunBody,
    "reject_orchestrator_run": ReasonBody,
}  # fmt: skip
QUERIES: dict[str, type[BaseModel]] = {"list_orchestrator_runs": RunsQuery}
RESPONSES: dict[str, dict[str, Any]] = {
    "list_services": {"200": {"type": "object"}}, "get_service": {"200": {"type": "object"}},
    "post_service": {"201": {"type": "object"}, "202": {"type": "object"}},
    "put_service": {"200": {"type": "object"}, "202": {"type": "object"}},
    "delete_service": {"204": {"description": "removed"}},
    "list_orchestrator_runs": {"200": {"type": "object"}},
    "get_orchestrator_run": {"200": {"type": "object"}},
    "post_orchestrator_run": {"201": {"type": "object"}, "202": {"type": "object"}},
    "get_orchestrator_run_events": {"200": {"type": "object"}},
    "get_orchestrator_run_artifacts": {"200": {"type": "object"}},
    "get_orchestrator_run_diff": {"200": {"type": "string"}},
    "approve_orchestrator_run": {"200": {"type": "object"}, "202": {"type": "object"}},
    "reject_orchestrator_run": {"200": {"type": "object"}, "202": {"type": "object"}},
    "cancel_orchestrator_run": {"202": {"type": "object"}},
}  # fmt: skip
