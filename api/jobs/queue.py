"""Queue routes: submit and manage jobs, read them from the queue read model, follow their
events (SSE pushed from the partition log), migration telemetry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cairn.api.context import (
    actor,
    context,
    event_view,
    idempotency_key,
    idempotent,
    json_response,
    min_position,
    path_id,
    read_body,
    read_query,
    written,
)
from cairn.api.jobs.run_views import run_detail
from cairn.api.roles import AUDITOR, OPERATOR, VIEWER
from cairn.api.schemas import ref
from cairn.commands.jobs.job import JobRequest, cancel_job, resubmit_job, submit_job, update_job
from cairn.commands.runner import CommandResult
from cairn.domain.errors import NotFound
from cairn.domain.jobs.dispatch import missing_capabilities
from cairn.domain.jobs.job import Job, JobSource, JobStatus
from cairn.domain.jobs.kinds import PublishMode, Runtime
from cairn.domain.jobs.registry import JOB_TYPES
from cairn.domain.limits import MAX_PAGE_BYTES, MAX_PAGE_ITEMS, MAX_PAYLOAD_BYTES, MAX_REASON
from cairn.domain.tasks.spec import Name, Priority
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.streams.registry import Registry

KEEP_ALIVE_MS = 15_000


def _check_payload(value: Any) -> Any:
    size = len(orjson.dumps(value))
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_PAYLOAD_BYTES} are accepted")
    return value


PAYLOAD_HELP = f"the job's input: at most {MAX_PAYLOAD_BYTES} bytes as JSON"
Payload = Annotated[
    dict[str, Any], AfterValidator(_check_payload), Field(description=PAYLOAD_HELP)
]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SubmitBody(_Wire):
    type: str = Field(min_length=1, max_length=64, json_schema_extra={"enum": [*JOB_TYPES]})
    payload: Payload
    priority: Priority = 0
    max_attempts: int = Field(default=3, ge=1, le=50)
    affinity_key: str | None = Field(default=None, min_length=1, max_length=200)
    project: Name = "default"


class UpdateBody(_Wire):
    expected_version: int = Field(ge=1, le=2**53)
    payload: Payload | None = None
    priority: Priority | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    affinity_key: str | None = Field(default=None, min_length=1, max_length=200)


class CancelBody(_Wire):
    reason: str = Field(default="", max_length=MAX_REASON)


class ListQuery(BaseModel):
    """Filters (each exact), cursor and page size; an unknown parameter is refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    status: JobStatus | None = None
    type: str | None = Field(default=None, max_length=64)
    runtime: Runtime | None = None
    skill: str | None = Field(default=None, max_length=200)
    publish_mode: PublishMode | None = Field(default=None, alias="publishMode")
    source: JobSource | None = None
    repository: str | None = Field(default=None, max_length=2_000)
    project: Name | None = None
    cursor: str | None = Field(default=None, max_length=400)
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_ITEMS)

    def filters(self) -> dict[str, str]:
        return self.model_dump(
            mode="json", by_alias=True, exclude={"cursor", "limit"}, exclude_none=True
        )


class _Positioned(BaseModel):
    model_config = ConfigDict(extra="ignore")
    min_position: str | None = Field(
        default=None, description="wait (bounded) until the queue shows this write"
    )


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    after: int = Field(default=0, ge=0, le=10**9, description="versions after this one")
    limit: int = Field(default=100, ge=1, le=1000)


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    after: int = Field(default=0, ge=0, le=10**9, description="or the Last-Event-ID header")


def job_view(job: Job, workers: list[list[str]] | None = None) -> dict[str, Any]:
    """A job as the API shows it (camelCase, like the payload). Given the live workers'
    capabilities, a queued job says which capabilities no worker offers (None: takeable)."""
    missing = None
    if workers is not None and job.status == "queued":
        missing = missing_capabilities(job.required_capabilities, workers)
    return {
        "missingCapabilities": missing,
        "id": job.id,
        "version": job.version,
        "type": job.job_type,
        "submittedType": job.submitted_type,
        "status": job.status,
        "project": job.project,
        "source": job.source,
        "taskId": job.task_id,
        "priority": job.priority,
        "maxAttempts": job.max_attempts,
        "attempt": job.attempt,
        "affinityKey": job.affinity_key,
        "workerId": job.worker_id,
        "payload": job.payload,
        "normalized": job.normalized,
        "requiredCapabilities": job.required_capabilities,
        "warnings": job.warnings,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "claimedAt": job.claimed_at,
        "startedAt": job.started_at,
        "finishedAt": job.finished_at,
        "notBefore": job.not_before,
        "outcome": job.outcome,
        "stages": job.stages,
        **run_detail(job),
        "cancelReason": job.cancel_reason,
        "resubmittedFrom": job.resubmitted_from,
        "resubmittedAs": job.resubmitted_as,
        "follows": job.follows,
        "resumeSession": job.resume_session,
        "followedBy": [{"jobId": f["job_id"], "message": f["message"]} for f in job.followed_by],
        "promotedTaskId": job.promoted_task_id,
    }


async def written_job(
    request: Request, result: CommandResult, job_id: str, status: int,
    view: Callable[[Job], dict[str, Any]] = job_view,
) -> Response:  # fmt: skip
    """The job (as `view` shows it) once the queue read model shows the write; else the
    command result (202)."""

    async def shown() -> dict[str, Any] | None:
        job = (await context(request).queue.get_jobs([job_id])).get(job_id)
        return view(job) if job is not None else None

    return await written(request, result, QUEUE, shown, status)


@idempotent
async def post_job(request: Request) -> Response:
    """Submit a job to the queue."""
    body: SubmitBody = await read_body(request, SubmitBody)
    ctx = context(request)
    job = JobRequest(
        body.type, body.payload, body.priority, body.max_attempts, body.affinity_key, body.project
    )
    result = await submit_job(
        ctx.store,
        job,
        ctx.settings.contract(),
        actor=actor(request),
        idempotency_key=idempotency_key(request),
    )
    return await written_job(request, result, result.id, 201)


async def live_capabilities(request: Request) -> list[list[str]]:
    ctx = context(request)
    return [list(w["capabilities"]) for w in await Registry(ctx.client, ctx.keys).workers()]


async def get_job(request: Request) -> Response:
    read_query(request, _Positioned)
    job = await _job_or_404(request, path_id(request, "job"))
    return json_response(job_view(job, await live_capabilities(request)))


async def _job_or_404(request: Request, job_id: str) -> Job:
    ctx = context(request)
    await ctx.caught_up(min_position(request, ctx.keys), QUEUE)
    job = (await ctx.queue.get_jobs([job_id])).get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", job_id=job_id)
    return job


async def list_jobs(request: Request) -> Response:
    """Jobs newest first, filtered by any of the facets; counts per status; cursor paging.
    A page ends at `limit` items or before it passes MAX_PAGE_BYTES (one item at least)."""
    query = read_query(request, ListQuery)
    filters = query.filters()
    ctx = context(request)
    items, cursor = await ctx.queue.list_jobs(filters, query.cursor, query.limit)
    workers = await live_capabilities(request)
    views = [job_view(j, workers) for j in items]
    fits = _fitting(views)
    if fits < len(views):
        # The same query, cut where the budget ends, gives that page's own cursor.
        items, cursor = await ctx.queue.list_jobs(filters, query.cursor, fits)
        views = [job_view(j, workers) for j in items]
    counts = await ctx.queue.counts(filters.get("project"))
    return json_response({"items": views, "nextCursor": cursor, "counts": counts})


def _fitting(views: list[dict[str, Any]]) -> int:
    """How many of `views` fit in MAX_PAGE_BYTES (one at least)."""
    size = 0
    for count, view in enumerate(views):
        size += len(orjson.dumps(view))
        if size > MAX_PAGE_BYTES:
            return max(count, 1)
    return len(views)


async def put_job(request: Request) -> Response:
    """Change a queued job; `expectedVersion` is required."""
    job_id = path_id(request, "job")
    body: UpdateBody = await read_body(request, UpdateBody)
    ctx = context(request)
    changes = body.model_dump(exclude_unset=True, exclude={"expected_version"})
    result = await update_job(
        ctx.store,
        job_id,
        changes,
        ctx.settings.contract(),
        actor=actor(request),
        expected_version=body.expected_version,
    )
    return await written_job(request, result, result.id, 200)


async def post_cancel(request: Request) -> Response:
    """Cancel a queued job, or ask a running one to stop; a repeat is a no-op."""
    job_id = path_id(request, "job")
    body: CancelBody = await read_body(request, CancelBody)
    result = await cancel_job(
        context(request).store, job_id, actor=actor(request), reason=body.reason
    )
    return await written_job(request, result, result.id, 200)


async def post_resubmit(request: Request) -> Response:
    """A new job from a failed, cancelled or dead-lettered one, linked to it."""
    result, new_id = await resubmit_job(
        context(request).store, path_id(request, "job"), actor=actor(request)
    )
    return await written_job(request, result, new_id, 201)


async def get_job_events(request: Request) -> Response:
    """The job's events after version `after` (at most `limit`)."""
    job_id = path_id(request, "job")
    query = read_query(request, EventsQuery)
    events = [e for e in await _events(request, job_id) if e.ver > query.after]
    return json_response({"id": job_id, "events": [event_view(e) for e in events[: query.limit]]})


async def _events(request: Request, job_id: str) -> list[Any]:
    """Every event of the job, in version order (404 if none)."""
    events = await context(request).store.read_aggregate(job_id)
    if not events:
        raise NotFound(f"job {job_id} does not exist", job_id=job_id)
    return events


async def stream_job_events(request: Request) -> Response:
    """Server-sent events: the job's events so far, then each new one as it is appended
    (read from the partition log with a blocking XREAD, not by polling a table)."""
    job_id = path_id(request, "job")
    last = request.headers.get("last-event-id", "")
    query = read_query(request, StreamQuery)
    after = int(last) if last.isdigit() and len(last) < 10 else query.after
    events = await _events(request, job_id)
    ctx = context(request)
    partition = ctx.keys.partition_of_id(job_id)

    async def stream() -> AsyncIterator[bytes]:
        for e in events:
            if e.ver > after:
                yield _sse(e)
        # Follow the log from the job's last event, so nothing between the read and the tail
        # is missed.
        position = events[-1].position
        while not await request.is_disconnected():
            fresh = await ctx.store.wait_log(partition, position, block_ms=KEEP_ALIVE_MS)
            if not fresh:
                yield b": keep-alive\n\n"
            for e in fresh:
                position = e.position
                if e.agg == job_id:
                    yield _sse(e)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _sse(e: Any) -> bytes:
    return f"id: {e.ver}\nevent: {e.type}\ndata: ".encode() + orjson.dumps(event_view(e)) + b"\n\n"


def metric_group(metrics: dict[str, int], prefix: str) -> dict[str, int]:
    """The queue's counters named `prefix|<value>`, by value."""
    return {k.split("|", 1)[1]: v for k, v in sorted(metrics.items()) if k.startswith(prefix + "|")}


def usage_group(metrics: dict[str, int], prefix: str) -> dict[str, dict[str, Any]]:
    """The usage counters `prefix|<name>|<field>` (a runtime's, a project's) by name: tokens
    in, cached and out, steps, and the cost in USD of the steps that had one."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in metric_group(metrics, prefix).items():
        name, _, field = key.rpartition("|")
        found.setdefault(name, {"tokens_in": 0, "tokens_cached": 0, "tokens_out": 0,
                                "cost_usd": 0.0, "steps": 0, "steps_without_cost": 0})
        if field == "cost_musd":
            found[name]["cost_usd"] = round(value / 1_000_000, 6)
        elif field in found[name]:
            found[name][field] = value
    return found


async def get_telemetry(request: Request) -> Response:
    """Volume by job type (legacy included), failures by runtime and stage, publish outcomes,
    tokens and cost by runtime and by project."""
    metrics = await context(request).queue.metrics()
    publish = metric_group(metrics, "publish")
    total = sum(publish.values())
    return json_response(
        {
            "volumeByType": metric_group(metrics, "submitted"),
            "legacyByType": metric_group(metrics, "legacy"),
            "failuresByRuntime": metric_group(metrics, "failed_runtime"),
            "failuresByStage": metric_group(metrics, "failed_stage"),
            "successesByRuntime": metric_group(metrics, "succeeded_runtime"),
            "publishOutcomes": publish,
            "publishOutcomeRates": {k: round(v / total, 4) for k, v in publish.items()}
            if total
            else {},
            "usageByRuntime": usage_group(metrics, "usage_runtime"),
            "usageByProject": usage_group(metrics, "usage_project"),
        }
    )


BODIES: dict[str, type[BaseModel]] = {
    "post_job": SubmitBody,
    "put_job": UpdateBody,
    "post_cancel": CancelBody,
}
JOB = {"200": ref("Job"), "202": ref("CommandResult")}
QUERIES: dict[str, type[BaseModel]] = {
    "list_jobs": ListQuery, "get_job": _Positioned, "get_job_events": EventsQuery,
    "stream_job_events": StreamQuery,
}  # fmt: skip
RESPONSES: dict[str, dict[str, Any]] = {
    "post_job": {"201": ref("Job"), "202": ref("CommandResult")},
    "list_jobs": {"200": ref("JobPage")},
    "get_telemetry": {"200": ref("Telemetry")},
    "get_job": {"200": ref("Job")},
    "put_job": JOB, "post_cancel": JOB,
    "post_resubmit": {"201": ref("Job"), "202": ref("CommandResult")},
    "get_job_events": {"200": ref("Events")},
    "stream_job_events": {"200": "text/event-stream"},
}  # fmt: skip
ROUTES = [
    Route("/api/queue/jobs", post_job, methods=["POST"]),
    Route("/api/queue/jobs", list_jobs, methods=["GET"]),
    Route("/api/queue/telemetry", get_telemetry, methods=["GET"]),
    Route("/api/queue/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/api/queue/jobs/{job_id}", put_job, methods=["PUT"]),
    Route("/api/queue/jobs/{job_id}/cancel", post_cancel, methods=["POST"]),
    Route("/api/queue/jobs/{job_id}/resubmit", post_resubmit, methods=["POST"]),
    Route("/api/queue/jobs/{job_id}/events", get_job_events, methods=["GET"]),
    Route("/api/queue/jobs/{job_id}/events/stream", stream_job_events, methods=["GET"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "post_job": OPERATOR,
    "list_jobs": VIEWER,
    "get_telemetry": VIEWER,
    "get_job": VIEWER,
    "put_job": OPERATOR,
    "post_cancel": OPERATOR,
    "post_resubmit": OPERATOR,
    "get_job_events": AUDITOR,
    "stream_job_events": AUDITOR,
}
