"""A job's run as it happens: its live output (a page, or SSE), its artifacts (listed from its
events, downloaded from the artifact store), and a person's controls (pause, resume, operator
messages)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from cairn.api.context import (
    actor,
    command_body,
    context,
    idempotency_key,
    idempotent,
    json_response,
    path_id,
    position_headers,
    read_body,
    read_query,
)
from cairn.api.jobs.queue import _job_or_404, _Wire, written_job
from cairn.api.jobs.run_views import artifact_view
from cairn.api.roles import OPERATOR, VIEWER
from cairn.api.schemas import ARTIFACT_FILE, ref
from cairn.commands.jobs.job import add_operator_message, pause_job, resume_job
from cairn.domain.jobs.controls import MAX_MESSAGE
from cairn.domain.jobs.job import TERMINAL
from cairn.domain.limits import MAX_PAGE_BYTES, MAX_REASON
from cairn.domain.tasks.spec import Visible
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.streams.artifacts import TEXT, FileArtifactStore, content_type_of
from cairn.streams.output import OutputEntry, OutputStream

TRANSCRIPT = "transcript"  # the output stream of transcript entries (api/jobs/transcripts.py)

KEEP_ALIVE_S = 15.0
FOLLOW_MS = 1_000  # how long one read of the output waits before the job's status is looked at
ENTRY = r"^[0-9]{1,19}-[0-9]{1,19}$"  # an output entry id (19 digits always fit the server's)
INLINE = {TEXT, "application/json"}  # shown in a browser; anything else is downloaded


class OutputQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    after: str = Field(default="0-0", pattern=ENTRY, description="entries after this id")
    limit: int = Field(default=500, ge=1, le=1000)


class OutputStreamQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    after: str = Field(default="0-0", pattern=ENTRY, description="or the Last-Event-ID header")


class ControlBody(_Wire):
    action: Literal["pause", "resume"]
    reason: str = Field(default="", max_length=MAX_REASON, description="why (pause only)")


class MessageBody(_Wire):
    text: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE), *Visible]


def output_of(request: Request) -> OutputStream:
    ctx = context(request)
    return OutputStream(ctx.client, ctx.keys, ctx.settings.execution.output_max_entries)


def artifacts_of(request: Request) -> FileArtifactStore:
    settings = context(request).settings
    return FileArtifactStore(settings.data_dir / "artifacts", settings.execution.artifact_max_bytes)


def entry_view(entry: OutputEntry) -> dict[str, Any]:
    return {"id": entry.id, "text": entry.text, "step": entry.step, "stream": entry.stream}


async def get_output(request: Request) -> Response:
    """The job's live output after an entry id; `next` is the id to read on from. A page ends
    at `limit` entries or before it passes MAX_PAGE_BYTES (one entry at least). The
    transcript's entries, which share the stream, are read from /transcript instead."""
    job_id = path_id(request, "job")
    query = read_query(request, OutputQuery)
    await _job_or_404(request, job_id)
    entries = await output_of(request).read(job_id, query.after, query.limit)
    items: list[dict[str, Any]] = []
    size, last = 0, query.after
    for entry in entries:
        if entry.stream == TRANSCRIPT:
            last = entry.id
            continue
        size += len(entry.text.encode())
        if items and size > MAX_PAGE_BYTES:
            break
        items.append(entry_view(entry))
        last = entry.id
    return json_response({"items": items, "next": last})


async def stream_output(request: Request) -> Response:
    """Server-sent events: the job's output after `Last-Event-ID` (or `after`), then each
    new entry as it comes; `end` once the job has finished and its output is drained."""
    query = read_query(request, OutputStreamQuery)
    return await output_events(request, query.after, _sse)


async def output_events(request: Request, after: str,
                        event: Callable[[OutputEntry], bytes | None]) -> Response:  # fmt: skip
    """Server-sent events of the job's output stream after `Last-Event-ID` (else `after`),
    each entry as `event` writes it (None: not this stream's), followed with a blocking read;
    `end` once the job has finished and what it wrote is drained."""
    job_id = path_id(request, "job")
    last = request.headers.get("last-event-id", "")
    start = last if re.fullmatch(ENTRY, last) else after
    await _job_or_404(request, job_id)
    output, queue = output_of(request), context(request).queue

    async def stream() -> AsyncIterator[bytes]:
        position, quiet_since = start, time.monotonic()
        while not await request.is_disconnected():
            entries = await output.follow(job_id, position, block_ms=FOLLOW_MS)
            for entry in entries:
                position = entry.id
                if (chunk := event(entry)) is not None:
                    yield chunk
            if entries:
                quiet_since = time.monotonic()
                continue
            job = (await queue.get_jobs([job_id])).get(job_id)
            if job is not None and job.status in TERMINAL:
                # Whatever the worker wrote before it finished is there now: drain, then end.
                while rest := await output.read(job_id, position, count=1000):
                    for entry in rest:
                        position = entry.id
                        if (chunk := event(entry)) is not None:
                            yield chunk
                yield b"event: end\ndata: " + orjson.dumps({"status": job.status}) + b"\n\n"
                return
            if time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _sse(entry: OutputEntry) -> bytes | None:
    if entry.stream == TRANSCRIPT:  # read from /transcript
        return None
    data = orjson.dumps(entry_view(entry))
    return f"id: {entry.id}\nevent: output\ndata: ".encode() + data + b"\n\n"


async def list_artifacts(request: Request) -> Response:
    """The job's artifacts, as its job.artifact_added events recorded them (every attempt)."""
    job = await _job_or_404(request, path_id(request, "job"))
    return json_response({"items": [artifact_view(a) for a in job.artifacts]})


async def get_artifact(request: Request) -> Response:
    """One artifact's file, by its path (`attempt-<n>/...`); text is shown, the rest is a
    download. A path that leads out of the job's folder is refused."""
    job_id = path_id(request, "job")
    path = str(request.path_params["path"])
    await _job_or_404(request, job_id)
    file = artifacts_of(request).open(job_id, path)
    kind = content_type_of(path)
    return FileResponse(
        file, media_type=kind, filename=path.rsplit("/", 1)[-1],
        content_disposition_type="inline" if kind in INLINE else "attachment",
        # What an agent wrote is never run as a page of this origin.
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )  # fmt: skip


async def post_control(request: Request) -> Response:
    """Pause a job at its next step boundary, or resume it; a repeat changes nothing."""
    job_id = path_id(request, "job")
    body: ControlBody = await read_body(request, ControlBody)
    store, who = context(request).store, actor(request)
    if body.action == "pause":
        result = await pause_job(store, job_id, actor=who, reason=body.reason)
    else:
        result = await resume_job(store, job_id, actor=who)
    return await written_job(request, result, job_id, 200)


@idempotent
async def post_operator_message(request: Request) -> Response:
    """Leave a message for the job's agent: a running agent is interrupted and its session goes
    on with it (a shell step, or a queued job, gets it before its next step)."""
    job_id = path_id(request, "job")
    body: MessageBody = await read_body(request, MessageBody)
    ctx = context(request)
    result = await add_operator_message(
        ctx.store, job_id, body.text, actor=actor(request),
        idempotency_key=idempotency_key(request),
    )  # fmt: skip
    headers = position_headers(result)
    if await ctx.caught_up(result.position, QUEUE):
        job = (await ctx.queue.get_jobs([job_id])).get(job_id)
        for message in job.operator_messages if job is not None else []:
            if message["id"] == result.version:
                return json_response(message, 201, headers)
    return json_response(command_body(result), 202, headers)


JOB = "/api/queue/jobs/{job_id}"
BODIES: dict[str, type[BaseModel]] = {
    "post_control": ControlBody,
    "post_operator_message": MessageBody,
}
QUERIES: dict[str, type[BaseModel]] = {
    "get_output": OutputQuery,
    "stream_output": OutputStreamQuery,
}
RESPONSES: dict[str, dict[str, Any]] = {
    "get_output": {"200": ref("Output")},
    "stream_output": {"200": "text/event-stream"},
    "list_artifacts": {"200": ref("Artifacts")},
    "get_artifact": {"200": ARTIFACT_FILE},
    "post_control": {"200": ref("Job"), "202": ref("CommandResult")},
    "post_operator_message": {"201": ref("OperatorMessage"), "202": ref("CommandResult")},
}
ROUTES = [
    Route(JOB + "/output", get_output, methods=["GET"]),
    Route(JOB + "/output/stream", stream_output, methods=["GET"]),
    Route(JOB + "/artifacts", list_artifacts, methods=["GET"]),
    Route(JOB + "/artifacts/{path:path}", get_artifact, methods=["GET"]),
    Route(JOB + "/control", post_control, methods=["POST"]),
    Route(JOB + "/operator-messages", post_operator_message, methods=["POST"]),
]
# The weakest role that may call each route (api/roles.py), by route name.
ROLES: dict[str, str] = {
    "get_output": VIEWER,
    "stream_output": VIEWER,
    "list_artifacts": VIEWER,
    "get_artifact": VIEWER,
    "post_control": OPERATOR,
    "post_operator_message": OPERATOR,
}
